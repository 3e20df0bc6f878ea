"""Strict serializer fields and a serializer base shared by every API.

DRF coerces by default (5 becomes "5", 1 becomes a UUID, naive times get a zone). The contract forbids
coercion, so these fields accept exactly the JSON type they document, and every string that reaches
the database is one PostgreSQL can store (no NUL, no lone surrogates).
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None when it can."""
    if "\x00" in value:
        return "NUL characters (\\u0000) are not allowed."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "Unpaired surrogate characters are not allowed."
    return None


def json_problem(value: Any, max_depth: int) -> tuple[str, str, str] | None:
    """The first (path, code, message) that makes `value` unstorable as JSON, or None."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return path, "invalid_text", problem
        elif isinstance(item, float):
            if not math.isfinite(item):
                return path, "out_of_range", "Number is out of range."
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                return path, "max_depth", f"JSON nesting is deeper than {max_depth} levels."
            if isinstance(item, dict):
                for key, child in item.items():
                    problem = text_problem(key)
                    if problem:
                        return path, "invalid_text", f"Object key: {problem}"
                    stack.append((child, depth + 1, f"{path}.{key}" if path else key))
            else:
                stack.extend((child, depth + 1, f"{path}.{i}" if path else str(i)) for i, child in enumerate(item))
    return None


class StrictCharField(serializers.CharField):
    """A JSON string, stored as sent (no trimming). `not_blank` also refuses whitespace-only text."""

    default_error_messages = {"invalid": "Must be a string.", "blank": "This field may not be blank."}

    def __init__(self, *, not_blank: bool = False, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        self.not_blank = not_blank
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        problem = text_problem(data)
        if problem:
            raise ValidationError(problem, code="invalid_text")
        if self.not_blank and not data.strip():
            self.fail("blank")
        return data


class StrictUUIDField(serializers.UUIDField):
    default_error_messages = {"invalid": "Must be a UUID string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            return uuid.UUID(data)
        except ValueError:
            self.fail("invalid")


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "Must be an integer."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return data


class StrictChoiceField(serializers.ChoiceField):
    """A string that must be one of `choices`; the error lists the valid ones."""

    def to_internal_value(self, data):
        if isinstance(data, str) and data in self.choice_strings_to_values:
            return self.choice_strings_to_values[data]
        valid = ", ".join(self.choice_strings_to_values)
        shown = json.dumps(data, ensure_ascii=True)[:100] if isinstance(data, str | int | float | bool) else "This"
        raise ValidationError(f"{shown} is not a valid choice; use one of: {valid}.", code="invalid_choice")


TIMESTAMP_ERRORS = {
    "invalid": "Must be an ISO 8601 timestamp string, e.g. 2026-01-31T12:00:00Z.",
    "naive": "The timestamp must carry a time zone (Z or an offset such as +02:00).",
    "out_of_range": "The timestamp is out of range.",
}


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 timestamp string with a time zone, returned in UTC."""

    default_error_messages = TIMESTAMP_ERRORS

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid")
        return parse_aware_timestamp(value, fail=self.fail)


def parse_aware_timestamp(value: str, *, fail) -> datetime:
    """ISO 8601 with a zone, to UTC. A space before the offset is read as '+' (URL-decoded query strings)."""
    text = value.strip()
    if len(text) > 19 and text[-6] == " " and text[-5:-3].isdigit():
        text = f"{text[:-6]}+{text[-5:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        fail("invalid")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        fail("naive")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        fail("out_of_range")


class JSONValueField(serializers.Field):
    """Any JSON value that the database can store: finite numbers, storable text, bounded nesting."""

    default_error_messages = {"type": "Must be {expected}."}

    def __init__(
        self, *, types: tuple[type, ...] | None = None, expected: str = "", max_bytes_setting: str = "", **kwargs
    ):
        self.types = types
        self.expected = expected
        self.max_bytes_setting = max_bytes_setting
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if self.types is not None and not isinstance(data, self.types):
            self.fail("type", expected=self.expected)
        problem = json_problem(data, settings.API_MAX_JSON_DEPTH)
        if problem:
            path, code, message = problem
            raise ValidationError({path: [ErrorDetail(message, code=code)]} if path else [ErrorDetail(message, code)])
        if self.max_bytes_setting:
            limit = getattr(settings, self.max_bytes_setting)
            size = len(json.dumps(data, ensure_ascii=False).encode())
            if size > limit:
                raise ValidationError(f"Must be at most {limit} bytes as JSON; got {size}.", code="too_large")
        return data

    def to_representation(self, value):
        return value


class TagsField(serializers.ListField):
    """A list of 1-100 character strings, at most 50 as sent; null is []. (Services drop duplicates.)"""

    def __init__(self, **kwargs):
        super().__init__(child=StrictCharField(min_length=1, max_length=100), max_length=50, allow_null=True, **kwargs)

    def run_validation(self, data=serializers.empty):
        if data is None:
            return []
        return super().run_validation(data)


def _shallow_copy(field: serializers.Field) -> serializers.Field:
    clone = object.__new__(type(field))
    clone.__dict__.update(field.__dict__)
    return clone


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not declare (code `unknown_field`), reported together with every other error."""

    def get_fields(self):
        # DRF deep-copies every declared field for every serializer, which rebuilds each field from its
        # arguments: 6% of a create's CPU. Binding a field (its name and parent) only assigns attributes,
        # so a shallow copy keeps instances apart just as well; nothing here mutates a field's shared parts.
        # Copied by hand: copy.copy's generic protocol (__reduce_ex__) took three times as long.
        return {name: _shallow_copy(field) for name, field in self._declared_fields.items()}

    def to_internal_value(self, data):
        fields = self.fields
        unknown = {
            key: [ErrorDetail("Unknown field.", code="unknown_field")]
            for key in data
            if key not in fields or fields[key].read_only
        }
        known = {key: value for key, value in data.items() if key in fields}
        try:
            validated = super().to_internal_value(known)
        except ValidationError as exc:
            raise ValidationError({**exc.detail, **unknown}) from None
        if unknown:
            raise ValidationError(unknown)
        return validated
