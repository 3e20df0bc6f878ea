"""Task output request and response shapes (contract: "Task outputs")."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from flow_executions.lifecycle import CREATABLE_STATUSES, Status
from superai_flow.serializers import (
    AwareDateTimeField,
    JSONValueField,
    StrictCharField,
    StrictChoiceField,
    StrictSerializer,
    StrictUUIDField,
    TagsField,
)


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
    updated_at = serializers.JSONField(
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


class TaskOutputSerializer(serializers.Serializer):
    """The stored record, as every endpoint returns it."""

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
