"""Flow and task execution request and response shapes (contract: "Flow executions", "Task executions")."""

from __future__ import annotations

from rest_framework import serializers

from flow_executions.lifecycle import CREATABLE_STATUSES, Status
from flow_executions.models import MAX_FLOW_VERSION
from superai_flow.serializers import (
    AwareDateTimeField,
    JSONValueField,
    StrictCharField,
    StrictChoiceField,
    StrictIntegerField,
    StrictSerializer,
    StrictUUIDField,
)

MAX_INT = 2**31 - 1


class FlowExecutionCreateSerializer(StrictSerializer):
    """POST /flow-executions."""

    id = StrictUUIDField(required=False)
    organization_id = StrictUUIDField()
    flow_name = StrictCharField(max_length=200, not_blank=True)
    flow_version = StrictIntegerField(min_value=1, max_value=MAX_FLOW_VERSION, required=False, default=1)
    input = JSONValueField(required=False, allow_null=True, default=None)
    status = StrictChoiceField(choices=CREATABLE_STATUSES, default=Status.QUEUED)
    modified_by = StrictCharField(max_length=255, required=False, default="system")


class StatusChangeSerializer(StrictSerializer):
    """PATCH of a flow execution: `status` (the lifecycle decides, 409 otherwise) and `modified_by`."""

    status = StrictChoiceField(choices=Status.choices, required=False)
    modified_by = StrictCharField(max_length=255, required=False)


class FlowExecutionSerializer(serializers.Serializer):
    """The stored record, as every endpoint returns it."""

    id = serializers.UUIDField(read_only=True)
    organization_id = serializers.UUIDField(read_only=True)
    flow_name = serializers.CharField(read_only=True)
    flow_version = serializers.IntegerField(read_only=True)
    status = serializers.ChoiceField(choices=Status.choices, read_only=True)
    input = serializers.JSONField(read_only=True)
    modified_by = serializers.CharField(read_only=True)
    started_at = serializers.DateTimeField(read_only=True, allow_null=True)
    completed_at = serializers.DateTimeField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class FlowExecutionDetailSerializer(FlowExecutionSerializer):
    """GET /flow-executions/{id}: the record plus counts of its task outputs (deleted ones excluded)."""

    task_output_count = serializers.IntegerField(read_only=True)
    task_output_counts = serializers.DictField(child=serializers.IntegerField(), read_only=True)


class TaskExecutionCreateSerializer(StrictSerializer):
    """POST /task-executions."""

    id = StrictUUIDField(required=False)
    flow_execution_id = StrictUUIDField()
    organization_id = StrictUUIDField()
    task_name = StrictCharField(max_length=200, not_blank=True)
    input = JSONValueField(required=False, allow_null=True, default=None)
    status = StrictChoiceField(choices=CREATABLE_STATUSES, default=Status.QUEUED)
    attempt = StrictIntegerField(min_value=1, max_value=MAX_INT, required=False, default=1)


class TaskExecutionChangeSerializer(StatusChangeSerializer):
    """PATCH of a task execution: status (lifecycle), output, error, retries, started_at, finished_at."""

    output = JSONValueField(required=False, allow_null=True)
    error = JSONValueField(required=False, allow_null=True)
    retries = StrictIntegerField(min_value=0, max_value=MAX_INT, required=False)
    started_at = AwareDateTimeField(required=False, allow_null=True)
    finished_at = AwareDateTimeField(required=False, allow_null=True)


class TaskExecutionSerializer(serializers.Serializer):
    """The stored record, with `duration_ms` derived from the start and finish times."""

    id = serializers.UUIDField(read_only=True)
    flow_execution_id = serializers.UUIDField(read_only=True)
    organization_id = serializers.UUIDField(read_only=True)
    task_name = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=Status.choices, read_only=True)
    attempt = serializers.IntegerField(read_only=True)
    retries = serializers.IntegerField(read_only=True)
    input = serializers.JSONField(read_only=True)
    output = serializers.JSONField(read_only=True)
    error = serializers.JSONField(read_only=True)
    started_at = serializers.DateTimeField(read_only=True, allow_null=True)
    finished_at = serializers.DateTimeField(read_only=True, allow_null=True)
    duration_ms = serializers.IntegerField(read_only=True, allow_null=True)
    modified_by = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
