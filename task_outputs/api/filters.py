"""GET /task-outputs filters (contract: "GET /task-outputs - list")."""

from __future__ import annotations

import django_filters

from flow_executions.lifecycle import Status
from superai_flow.filters import (
    AllTagsFilter,
    ChoicesFilter,
    KeysetOrderingFilter,
    StrictFilterSet,
    TextFilter,
    TimestampFilter,
)
from task_outputs.models import TaskOutput


class TaskOutputFilterSet(StrictFilterSet):
    json_key_fields = ("summary",)

    organization_id = django_filters.UUIDFilter()
    flow_execution_id = django_filters.UUIDFilter()
    task_execution_id = django_filters.UUIDFilter()
    task_name = TextFilter()
    status = ChoicesFilter(choices=Status.choices)
    tag = AllTagsFilter(field_name="tags", max_length=100)
    created_after = TimestampFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimestampFilter(field_name="created_at", lookup_expr="lt")
    ordering = KeysetOrderingFilter(field_name="created_at")

    class Meta:
        model = TaskOutput
        fields: list[str] = []
