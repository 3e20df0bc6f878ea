"""GET /task-outputs filters (contract: "GET /task-outputs - list")."""

from __future__ import annotations

import django_filters
from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from flow_executions.lifecycle import Status
from superai_flow.filters import (
    AllTagsFilter,
    ChoicesFilter,
    JSONKeysetOrderingFilter,
    StrictFilterSet,
    TextFilter,
)
from task_outputs import live
from task_outputs.models import TaskOutput
from task_outputs.selectors import in_tag_order, with_tags


class LiveCursorField(forms.Field):
    default_error_messages = {"invalid": "Not a live cursor; use one from a WebSocket message or X-Live-Cursor."}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return live.decode_cursor(value)
        except live.InvalidCursor:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class LiveCursorFilter(django_filters.Filter):
    """`after=<live cursor>`: what was written since, in transaction order (oldest first)."""

    field_class = LiveCursorField

    def filter(self, qs, value):
        return qs if value is None else live.written_since(qs, value)


class TaskOutputFilterForm(forms.Form):
    def clean(self):
        data = super().clean()
        if data.get("after") is not None and data.get("ordering"):
            raise forms.ValidationError(
                {"ordering": forms.ValidationError("Results after a live cursor come in write order.", code="invalid")}
            )
        return data


class TaskOutputFilterSet(StrictFilterSet):
    json_key_fields = ("summary",)

    flow_execution_id = django_filters.UUIDFilter()
    task_execution_id = django_filters.UUIDFilter()
    task_name = TextFilter()
    status = ChoicesFilter(choices=Status.choices)
    tag = AllTagsFilter(field_name="tags", max_length=100, method="filter_tags")
    after = extend_schema_field(OpenApiTypes.STR)(LiveCursorFilter())
    ordering = extend_schema_field(
        {"type": "string", "description": "created_at, -created_at, summary.<path> or -summary.<path>"}
    )(JSONKeysetOrderingFilter(field_name="created_at", column="summary"))

    class Meta:
        model = TaskOutput
        form = TaskOutputFilterForm
        fields: list[str] = []

    # Pages of a list read tagged outputs newest first through their tag rows (TaskOutputPageFilterSet);
    # exports and stats read every match, which the GIN index finds faster (task_outputs.selectors.with_tags).
    tags_in_order = False

    def filter_tags(self, queryset, name, value):
        return with_tags(queryset, value, in_order=self.tags_in_order)

    def filter_queryset(self, queryset):
        return in_tag_order(super().filter_queryset(queryset))


class TaskOutputPageFilterSet(TaskOutputFilterSet):
    """The filters of GET /task-outputs, which answers a page at a time."""

    tags_in_order = True
