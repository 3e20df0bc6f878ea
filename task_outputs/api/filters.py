"""GET /task-outputs filters (contract: "GET /task-outputs - list")."""

from __future__ import annotations

import django_filters

from flow_executions.lifecycle import Status
from superai_flow.filters import (
    AllTagsFilter,
    ChoicesFilter,
    StrictFilterSet,
    TextFilter,
)
from task_outputs.models import TaskOutput


class TaskOutputFilterSet(StrictFilterSet):
    json_key_fields = ("summary",)

    flow_execution_id = django_filters.UUIDFilter()
    task_execution_id = django_filters.UUIDFilter()
    task_name = TextFilter()
    status = ChoicesFilter(choices=Status.choices)
    tag = AllTagsFilter(field_name="tags", max_length=100)

    class Meta:
        model = TaskOutput
        fields: list[str] = []
