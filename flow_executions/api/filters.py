"""List filters of flow and task executions (contract: "Flow executions", "Task executions")."""

from __future__ import annotations

import django_filters

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution, TaskExecution
from superai_flow.filters import ChoicesFilter, StrictFilterSet, TextFilter


class FlowExecutionFilterSet(StrictFilterSet):
    flow_name = TextFilter()
    status = ChoicesFilter(choices=Status.choices)

    class Meta:
        model = FlowExecution
        fields: list[str] = []


class TaskExecutionFilterSet(StrictFilterSet):
    flow_execution_id = django_filters.UUIDFilter()
    task_name = TextFilter()
    status = ChoicesFilter(choices=Status.choices)

    class Meta:
        model = TaskExecution
        fields: list[str] = []
