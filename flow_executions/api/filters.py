"""GET /flow-executions filters (contract: "Flow executions")."""

from __future__ import annotations

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution
from superai_flow.filters import ChoicesFilter, StrictFilterSet, TextFilter


class FlowExecutionFilterSet(StrictFilterSet):
    flow_name = TextFilter()
    status = ChoicesFilter(choices=Status.choices)

    class Meta:
        model = FlowExecution
        fields: list[str] = []
