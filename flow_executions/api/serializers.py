"""Flow execution request and response shapes (contract: "Flow executions")."""

from __future__ import annotations

from rest_framework import serializers

from flow_executions.lifecycle import CREATABLE_STATUSES, Status
from flow_executions.models import MAX_FLOW_VERSION
from superai_flow.serializers import (
    JSONValueField,
    StrictCharField,
    StrictChoiceField,
    StrictIntegerField,
    StrictSerializer,
    StrictUUIDField,
)


class FlowExecutionCreateSerializer(StrictSerializer):
    """POST /flow-executions."""

    id = StrictUUIDField(required=False)
    organization_id = StrictUUIDField()
    flow_name = StrictCharField(max_length=200, not_blank=True)
    flow_version = StrictIntegerField(min_value=1, max_value=MAX_FLOW_VERSION, required=False, default=1)
    input = JSONValueField(required=False, allow_null=True, default=None)
    status = StrictChoiceField(choices=CREATABLE_STATUSES, default=Status.QUEUED)
    modified_by = StrictCharField(max_length=255, required=False, default="system")


class FlowExecutionSerializer(serializers.Serializer):
    """The stored record, as every endpoint returns it."""

    id = serializers.UUIDField(read_only=True)
    organization_id = serializers.UUIDField(read_only=True)
    flow_name = serializers.CharField(read_only=True)
    flow_version = serializers.IntegerField(read_only=True)
    status = serializers.CharField(read_only=True)
    input = serializers.JSONField(read_only=True)
    modified_by = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class FlowExecutionDetailSerializer(FlowExecutionSerializer):
    """GET /flow-executions/{id}: the record plus counts of its task outputs (deleted ones excluded)."""

    task_output_count = serializers.IntegerField(read_only=True)
    task_output_counts = serializers.DictField(child=serializers.IntegerField(), read_only=True)
