"""Strict list filtering: every query parameter is a known filter, a pagination parameter or a 422.

Filter sets declare their filters with the field types below (repeatable values, time-zoned
timestamps, tags that must all be present). `json_key_fields` lets a filter set accept queries on
keys inside a JSON column: `summary.<path>=<json or text>` and `summary.<path>__gt|gte|lt|lte=<number>`.
"""

from __future__ import annotations

import json
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import ProhibitNullCharactersValidator
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ErrorDetail, ValidationError

from superai_flow.json_queries import (
    COMPARISONS,
    JSONArrayContainsAll,
    JSONPathCompare,
    JSONPathEquals,
    JSONPathKind,
    JSONPathNumber,
    JSONPathText,
    json_path,
)
from superai_flow.serializers import TIMESTAMP_ERRORS, json_problem, parse_aware_timestamp, text_problem


class _ListWidget(forms.Widget):
    """Every value of a repeated parameter; with `split_commas`, `a,b` counts as two values."""

    split_commas = False

    def value_from_datadict(self, data, files, name):
        values = data.getlist(name) if hasattr(data, "getlist") else [data.get(name)]
        if self.split_commas:
            values = [part for value in values if value for part in value.split(",")]
        return [value for value in values if value]


class _CommaListWidget(_ListWidget):
    split_commas = True


class TimestampFormField(forms.Field):
    default_error_messages = TIMESTAMP_ERRORS

    def to_python(self, value):
        if value in self.empty_values:
            return None

        def fail(key):
            raise DjangoValidationError(self.error_messages[key], code=key)

        return parse_aware_timestamp(value, fail=fail)


class TextListFormField(forms.Field):
    """A list of strings of at most `max_length` characters, each storable text."""

    widget = _ListWidget

    def __init__(self, *, max_length: int, **kwargs):
        self.max_length = max_length
        super().__init__(**kwargs)

    def to_python(self, value):
        for item in value or []:
            problem = text_problem(item)
            if problem:
                raise DjangoValidationError(problem, code="invalid_text")
            if len(item) > self.max_length:
                raise DjangoValidationError(f"Each value has at most {self.max_length} characters.", code="max_length")
        return value or []


class TextFilter(django_filters.CharFilter):
    """Exact, case-sensitive match of a string, taken as sent (no trimming)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("strip", False)
        kwargs.setdefault("validators", [ProhibitNullCharactersValidator()])
        super().__init__(**kwargs)


class TimestampFilter(django_filters.Filter):
    field_class = TimestampFormField


class ChoicesFilter(django_filters.MultipleChoiceFilter):
    """Matches any of the given choices; repeatable (`?s=a&s=b`) or comma-separated (`?s=a,b`)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("widget", _CommaListWidget)
        super().__init__(**kwargs)

    def filter(self, qs, value):
        return qs.filter(**{f"{self.field_name}__in": value}) if value else qs


class AllTagsFilter(django_filters.Filter):
    """Repeatable; a record matches when its JSON array holds every value given."""

    field_class = TextListFormField

    def filter(self, qs, value):
        return qs.filter(JSONArrayContainsAll(self.field_name, value)) if value else qs


class KeysetOrderingFilter(django_filters.ChoiceFilter):
    """`<field>` or `-<field>`, with the primary key as the tie-breaker that keyset pagination needs."""

    def __init__(self, *, field_name: str, **kwargs):
        choices = [(field_name, field_name), (f"-{field_name}", f"-{field_name}")]
        super().__init__(field_name=field_name, choices=choices, **kwargs)

    def filter(self, qs, value):
        if not value:
            return qs
        return qs.order_by(value, "-id" if value.startswith("-") else "id")


# The names ordering by a JSON value annotates rows with (superai_flow.json_queries; read by KeysetPagination).
ORDER_KIND, ORDER_NUMBER, ORDER_TEXT = "_order_kind", "_order_number", "_order_text"


class JSONOrderingFormField(forms.CharField):
    """`<field>`, `-<field>`, `<column>.<path>` or `-<column>.<path>`: (descending, column or None, path or field)."""

    def __init__(self, *, ordered_field: str, column: str, **kwargs):
        self.field_name, self.column = ordered_field, column
        super().__init__(strip=False, **kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return None
        name = value.removeprefix("-")
        if name == self.field_name:
            return value.startswith("-"), None, name
        column, dot, path_text = name.partition(".")
        path = json_path(path_text)
        if column == self.column and dot and path:
            return value.startswith("-"), column, path
        raise DjangoValidationError(
            f"Use {self.field_name}, -{self.field_name}, {self.column}.<path> or -{self.column}.<path> "
            f"(dotted keys for nested objects).",
            code="invalid_choice",
        )


class JSONKeysetOrderingFilter(KeysetOrderingFilter):
    """KeysetOrderingFilter that also orders by the value at a path in a JSON column: numbers (numerically),
    then strings, then records without either there, in both directions; ties by `field_name`, then id."""

    field_class = JSONOrderingFormField

    def __init__(self, *, field_name: str, column: str, **kwargs):
        # The form field gets the filter's extra arguments: the field it may order by, and the JSON column.
        django_filters.Filter.__init__(self, field_name=field_name, ordered_field=field_name, column=column, **kwargs)

    def filter(self, qs, value):
        if not value:
            return qs
        descending, column, path = value
        sign = "-" if descending else ""
        if column is None:
            return qs.order_by(f"{sign}{path}", f"{sign}id")
        keys = {
            ORDER_KIND: JSONPathKind(column, path),
            ORDER_NUMBER: JSONPathNumber(column, path),
            ORDER_TEXT: JSONPathText(column, path),
        }
        then = (f"{sign}{ORDER_NUMBER}", f"{sign}{ORDER_TEXT}", f"{sign}{self.field_name}", f"{sign}id")
        return qs.annotate(**keys).order_by(ORDER_KIND, *then)  # the kind ascending: the rest last either way


class StrictFilterSet(django_filters.FilterSet):
    """Filters every list has (creation time window, ordering); `json_key_fields` also accept
    `<field>.<path>[__op]` parameters."""

    json_key_fields: tuple[str, ...] = ()

    organization_id = django_filters.UUIDFilter()
    created_after = TimestampFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimestampFilter(field_name="created_at", lookup_expr="lt")
    ordering = extend_schema_field({"type": "string", "enum": ["created_at", "-created_at"]})(
        KeysetOrderingFilter(field_name="created_at")
    )


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


def _parse_json_key_filter(name: str, values: list[str]) -> list[Any]:
    """Conditions for one `<column>.<path>[__op]` parameter (each repetition must hold)."""
    column, _, path_text = name.partition(".")
    operator = None
    head, sep, tail = path_text.rpartition("__")
    if sep and tail in COMPARISONS:
        path_text, operator = head, tail
    path = json_path(path_text)
    if path is None:
        raise DjangoValidationError(
            f"Use {column}.<key> or dotted keys for nested objects, e.g. {column}.stats.rows.", code="invalid_path"
        )
    conditions = []
    for raw in values:
        problem = text_problem(raw)
        if problem:
            raise DjangoValidationError(problem, code="invalid_text")
        try:
            value = json.loads(raw, parse_constant=_not_json)
        except ValueError:
            value = raw
        if operator:
            if isinstance(value, bool) or not isinstance(value, int | float) or json_problem(value, 1):
                raise DjangoValidationError(f"__{operator} compares with a number; got {raw!r}.", code="invalid")
            conditions.append(JSONPathCompare(column, path, operator, value))
        else:
            if json_problem(value, 32):
                raise DjangoValidationError("The value is not a usable JSON value.", code="invalid")
            conditions.append(JSONPathEquals(column, path, value))
    return conditions


def _details(error: DjangoValidationError) -> list[ErrorDetail]:
    return [ErrorDetail(str(e.message % (e.params or {})), code=e.code or "invalid") for e in error.error_list]


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter's backend, refusing unknown parameters and adding JSON key queries; for lists (a view's
    `filtered_actions` may name more), with the view's `extra_query_params` and, for lists, the pagination's."""

    def filter_queryset(self, request, queryset, view):
        action = getattr(view, "action", None)
        if action not in getattr(view, "filtered_actions", ("list",)):
            return queryset
        filterset = self.get_filterset(request, queryset, view)
        extra = getattr(view, "extra_query_params", ())
        accepted = set(extra() if callable(extra) else extra)
        if action == "list":
            accepted |= set(getattr(view.paginator, "query_params", ()))
        json_fields = ()
        if filterset is not None:
            accepted |= set(filterset.filters)
            json_fields = getattr(filterset, "json_key_fields", ())
        errors: dict[str, list[ErrorDetail]] = {}
        conditions = []
        for name in request.query_params:
            if name in accepted:
                if "" in request.query_params.getlist(name) and name not in ("page_size", "cursor"):
                    errors[name] = [ErrorDetail("Give a value, or leave the parameter out.", code="blank")]
                continue
            if name.partition(".")[0] in json_fields and "." in name:
                try:
                    conditions += _parse_json_key_filter(name, request.query_params.getlist(name))
                except DjangoValidationError as exc:
                    errors[name] = _details(exc)
            else:
                errors[name] = [ErrorDetail("Unknown query parameter.", code="unknown_parameter")]
        if filterset is not None and not filterset.is_valid():
            for field, field_errors in filterset.form.errors.as_data().items():
                errors[field] = [detail for error in field_errors for detail in _details(error)]
        if errors:
            raise ValidationError(errors)
        return (filterset.qs if filterset is not None else queryset).filter(*conditions)
