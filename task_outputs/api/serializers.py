"""Task output request and response shapes (contract: "Task outputs")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

from flow_executions.lifecycle import CREATABLE_STATUSES, Status
from superai_flow.json_queries import json_path
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


def _uuid_text(value) -> str | None:
    return None if value is None else str(value)


# The record's keys in order, each with how its value comes from the stored output. Every endpoint, both
# live feeds and the exports show a task output this way (task_output_data, task_output_fields).
RECORD: dict[str, Any] = {
    "id": lambda output: str(output.id),
    "flow_execution_id": lambda output: str(output.flow_execution_id),
    "organization_id": lambda output: str(output.organization_id),
    "flow_version": lambda output: output.flow_version,
    "task_execution_id": lambda output: _uuid_text(output.task_execution_id),
    "task_name": lambda output: output.task_name,
    "status": lambda output: output.status,
    "summary": lambda output: output.summary,
    "output": lambda output: output.output,
    "tags": lambda output: output.tags,
    "modified_by": lambda output: output.modified_by,
    "created_at": lambda output: timestamp(output.created_at),
    "updated_at": lambda output: timestamp(output.updated_at),
}


def task_output_data(output: TaskOutput) -> dict[str, Any]:
    """The stored record as JSON-ready data: the one representation of the API, the live feeds and exports.

    A plain function: DRF's serializer deep-copies its fields on every instantiation, which cost 6% of
    a create's CPU (docs/performance.md). Its values match DRF's fields (UUIDs as text, UTC times in ISO 8601
    with `Z`).
    """
    return {name: value(output) for name, value in RECORD.items()}


@dataclass(frozen=True)
class Fields:
    """What `fields=` asked for: record keys, in the record's order, and the summary paths to keep.

    `summary_paths` is None when `summary` is shown whole (asked for by name, or not at all).
    """

    names: tuple[str, ...]
    summary_paths: tuple[tuple[str, ...], ...] | None = None

    @property
    def columns(self) -> list[str]:
        """The model fields these keys read, for `QuerySet.only()` (plus what keyset pages order by)."""
        return sorted({name.removesuffix("_id") for name in self.names} | {"id", "created_at", "write_txid"})


MAX_FIELDS = 50


def parse_fields(raw: str) -> Fields:
    """`fields=id,task_name,summary.pages`: the record keys and `summary.<path>` entries to return; 422 otherwise."""
    entries = raw.split(",")
    if len(entries) > MAX_FIELDS:
        raise ValidationError({"fields": [ErrorDetail(f"At most {MAX_FIELDS} fields.", code="too_many")]})
    names: set[str] = set()
    paths: set[tuple[str, ...]] = set()
    problems = []
    for entry in entries:
        if not entry:
            problems.append(ErrorDetail("Name the fields, separated by single commas.", code="blank"))
            continue
        prefixed = entry.startswith("summary.")
        path = json_path(entry.removeprefix("summary.")) if prefixed else None
        if entry in RECORD:
            names.add(entry)
        elif path is not None:
            paths.add(tuple(path))
        elif prefixed:
            message = f"{entry!r}: use summary.<key>, or dotted keys for nested objects (summary.stats.rows)."
            problems.append(ErrorDetail(message, code="invalid_path"))
        else:
            message = f"Unknown field {entry!r}: choose from {', '.join(RECORD)} and summary.<path>, comma-separated."
            problems.append(ErrorDetail(message, code="unknown_field"))
    if problems:
        raise ValidationError({"fields": problems})
    if "summary" in names or not paths:
        return Fields(tuple(name for name in RECORD if name in names))
    # summary.stats and summary.stats.rows: the whole of stats.
    kept = tuple(path for path in sorted(paths) if not any(path[: len(other)] == other for other in paths - {path}))
    return Fields(tuple(name for name in RECORD if name in names or name == "summary"), kept)


def task_output_fields(output: TaskOutput, fields: Fields) -> dict[str, Any]:
    """The record reduced to `fields`: its keys in the record's order, `summary` cut to the paths asked for."""
    data = {name: RECORD[name](output) for name in fields.names}
    if fields.summary_paths is not None:
        data["summary"] = summary_at(data["summary"], fields.summary_paths)
    return data


def requested_fields(request) -> Fields | None:
    """The request's `fields=` (repeatable, comma-separated), or None for the whole record."""
    values = request.query_params.getlist("fields")
    return parse_fields(",".join(values)) if values else None


def represent(output: TaskOutput, fields: Fields | None) -> dict[str, Any]:
    return task_output_data(output) if fields is None else task_output_fields(output, fields)


def summary_at(summary: Any, paths: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
    """`summary` with only the values at `paths` (nested objects kept as nested objects); missing paths left out."""
    reduced: dict[str, Any] = {}
    for path in paths:
        value = summary
        for key in path:
            if not isinstance(value, dict) or key not in value:
                break
            value = value[key]
        else:
            target = reduced
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = value
    return reduced


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
