"""Signal handlers of flow executions: status changes are announced after commit, to the flow's watchers
and to the organization's summary feed (where execution lists keep their rows current)."""

from __future__ import annotations

import json

from flow_executions.api.serializers import FlowExecutionSerializer
from flow_executions.models import FlowExecution
from superai_flow.notifications import flow_group, send_on_commit, summary_group


def flow_execution_saved(sender, instance: FlowExecution, created: bool, raw: bool = False, **kwargs) -> None:
    previous = getattr(instance, "saved_status", None)
    instance.saved_status = instance.status
    if raw or created or previous == instance.status:
        return
    text = json.dumps({"type": "flow_execution.updated", "data": FlowExecutionSerializer(instance).data})
    event = {"type": "flow_execution.updated", "text": text}
    send_on_commit([(flow_group(instance.id), event), (summary_group(instance.organization_id), event)])
