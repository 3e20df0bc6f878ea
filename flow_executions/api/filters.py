"""GET /flow-executions filters (contract: "Flow executions")."""

from __future__ import annotations

import django_filters

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution
from superai_flow.filters import ChoicesFilter, KeysetOrderingFilter, StrictFilterSet, TextFilter, TimestampFilter


class FlowExecutionFilterSet(StrictFilterSet):
    organization_id = django_filters.UUIDFilter()
    flow_name = TextFilter()
    status = ChoicesFilter(choices=Status.choices)
    created_after = TimestampFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimestampFilter(field_name="created_at", lookup_expr="lt")
    ordering = KeysetOrderingFilter(field_name="created_at")

    class Meta:
        model = FlowExecution
        fields: list[str] = []
