"""Task output request and response shapes (contract: "Task outputs")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from flow_executions.lifecycle import CREATABLE_STATUSES, Status
from superai_flow.serializers import (
    AwareDateTimeField,
    IgnoredJSONField,
    JSONValueField,
    StrictCharField,
    StrictChoiceField,
    StrictSerializer,
    StrictUUIDField,
    TagsField,
)
from task_outputs.models import TaskOutput


class TaskOutputCreateSerializer(StrictSerializer):
    """POST /task-outputs. Shapes only: organization, references and idempotency are checked after."""

    id = StrictUUIDField(required=False)
    flow_execution_id = StrictUUIDField()
    organization_id = StrictUUIDField()
    task_execution_id = StrictUUIDField(required=False, allow_null=True, default=None)
    task_name = StrictCharField(max_length=200, not_blank=True)
    status = StrictChoiceField(choices=CREATABLE_STATUSES, default=Status.QUEUED)
    summary = JSONValueField(
        types=(dict, str), expected="a JSON object or a string", max_bytes_setting="API_MAX_SUMMARY_BYTES"
    )
    output = JSONValueField(required=False, allow_null=True, default=None)
    tags = TagsField(required=False, default=list)
    modified_by = StrictCharField(max_length=255, required=False, default="system")
    created_at = AwareDateTimeField(required=False)
    updated_at = IgnoredJSONField(
        required=False, write_only=True, help_text="Accepted and ignored: the server sets it."
    )

    def validate(self, attrs):
        attrs.pop("updated_at", None)
        return attrs

    def validate_created_at(self, value):
        skew = timedelta(seconds=settings.API_CREATED_AT_MAX_SKEW_SECONDS)
        if value > timezone.now() + skew:
            minutes = settings.API_CREATED_AT_MAX_SKEW_SECONDS // 60
            raise serializers.ValidationError(
                f"Must not be more than {minutes} minutes in the future.", code="in_future"
            )
        return value


class TaskOutputChangeSerializer(StrictSerializer):
    """PATCH /task-outputs/{id}: `status` (only to stale or deleted), `tags`, `modified_by`."""

    status = StrictChoiceField(choices=Status.choices, required=False)
    tags = TagsField(required=False)
    modified_by = StrictCharField(max_length=255, required=False)


def task_output_data(output: TaskOutput) -> dict[str, Any]:
    """The stored record as JSON-ready data: the one representation of the API, the live feeds and exports.

    A plain function: DRF's serializer deep-copies its fields on every instantiation, which cost 6% of
    a create's CPU (docs/performance.md). Its values match DRF's fields (UUIDs as text, UTC times in ISO 8601
    with `Z`).
    """
    return {
        "id": str(output.id),
        "flow_execution_id": str(output.flow_execution_id),
        "organization_id": str(output.organization_id),
        "flow_version": output.flow_version,
        "task_execution_id": None if output.task_execution_id is None else str(output.task_execution_id),
        "task_name": output.task_name,
        "status": output.status,
        "summary": output.summary,
        "output": output.output,
        "tags": output.tags,
        "modified_by": output.modified_by,
        "created_at": timestamp(output.created_at),
        "updated_at": timestamp(output.updated_at),
    }


def timestamp(value: datetime) -> str:
    """An aware datetime as DRF's DateTimeField shows it: ISO 8601 in UTC, `Z` for +00:00."""
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class TaskOutputSerializer(serializers.Serializer):
    """The stored record, as every endpoint returns it (for the schema: the data comes from task_output_data)."""

    id = serializers.UUIDField(read_only=True)
    flow_execution_id = serializers.UUIDField(read_only=True)
    organization_id = serializers.UUIDField(read_only=True)
    flow_version = serializers.IntegerField(read_only=True)
    task_execution_id = serializers.UUIDField(read_only=True, allow_null=True)
    task_name = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=Status.choices, read_only=True)
    summary = JSONValueField(types=(dict, str), read_only=True)
    output = serializers.JSONField(read_only=True)
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    modified_by = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, instance: TaskOutput) -> dict[str, Any]:
        return task_output_data(instance)
