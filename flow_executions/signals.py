"""Signal handlers of flow executions: status changes are announced to the flow's watchers after commit."""

from __future__ import annotations

import json

from flow_executions.api.serializers import FlowExecutionSerializer
from flow_executions.models import FlowExecution
from superai_flow.notifications import flow_group, send_on_commit


def flow_execution_saved(sender, instance: FlowExecution, created: bool, raw: bool = False, **kwargs) -> None:
    previous = getattr(instance, "saved_status", None)
    instance.saved_status = instance.status
    if raw or created or previous == instance.status:
        return
    text = json.dumps({"type": "flow_execution.updated", "data": FlowExecutionSerializer(instance).data})
    send_on_commit([(flow_group(instance.id), {"type": "flow_execution.updated", "text": text})])
