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
from django.core.validators import (
    MaxLengthValidator,
    MaxValueValidator,
    MinLengthValidator,
    MinValueValidator,
    ProhibitNullCharactersValidator,
)
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.fields import empty
from rest_framework.validators import ProhibitSurrogateCharactersValidator


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


# What a field's `accept` returns for a value it does not take as it is: DRF's path then explains why.
REJECT = object()


def _null_or_reject(field: serializers.Field, value: Any) -> Any:
    """`accept`'s answer for a value of the wrong type: None stays None where the field allows null."""
    return None if value is None and field.allow_null else REJECT


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

    fast_validators = (
        MaxLengthValidator,
        MinLengthValidator,
        ProhibitNullCharactersValidator,
        ProhibitSurrogateCharactersValidator,
    )

    def accept(self, value):
        if not isinstance(value, str):
            return _null_or_reject(self, value)
        if value == "":
            return "" if self.allow_blank else REJECT
        if (
            text_problem(value)
            or (self.not_blank and not value.strip())
            or (self.max_length is not None and len(value) > self.max_length)
            or (self.min_length is not None and len(value) < self.min_length)
        ):
            return REJECT
        return value


class StrictUUIDField(serializers.UUIDField):
    default_error_messages = {"invalid": "Must be a UUID string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            return uuid.UUID(data)
        except ValueError:
            self.fail("invalid")

    def accept(self, value):
        if not isinstance(value, str):
            return _null_or_reject(self, value)
        try:
            return uuid.UUID(value)
        except ValueError:
            return REJECT


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "Must be an integer."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return data

    fast_validators = (MaxValueValidator, MinValueValidator)

    def accept(self, value):
        if value is None:
            return None if self.allow_null else REJECT
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or (self.max_value is not None and value > self.max_value)
            or (self.min_value is not None and value < self.min_value)
        ):
            return REJECT
        return value


class StrictChoiceField(serializers.ChoiceField):
    """A string that must be one of `choices`; the error lists the valid ones."""

    def to_internal_value(self, data):
        if isinstance(data, str) and data in self.choice_strings_to_values:
            return self.choice_strings_to_values[data]
        valid = ", ".join(self.choice_strings_to_values)
        shown = json.dumps(data, ensure_ascii=True)[:100] if isinstance(data, str | int | float | bool) else "This"
        raise ValidationError(f"{shown} is not a valid choice; use one of: {valid}.", code="invalid_choice")

    def accept(self, value):
        if value is None:
            return None if self.allow_null else REJECT
        if isinstance(value, str) and value in self.choice_strings_to_values:
            return self.choice_strings_to_values[value]
        return REJECT


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

    def accept(self, value):
        if not isinstance(value, str):
            return _null_or_reject(self, value)
        try:
            return parse_aware_timestamp(value, fail=self.fail)
        except ValidationError:
            return REJECT


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

    def accept(self, value):
        if value is None:
            return None if self.allow_null else REJECT
        if (self.types is not None and not isinstance(value, self.types)) or json_problem(
            value, settings.API_MAX_JSON_DEPTH
        ):
            return REJECT
        if self.max_bytes_setting:
            size = len(json.dumps(value, ensure_ascii=False).encode())
            if size > getattr(settings, self.max_bytes_setting):
                return REJECT
        return value


class IgnoredJSONField(serializers.JSONField):
    """Any JSON value but null, which the serializer's `validate` then drops (e.g. a server-set field)."""

    def accept(self, value):
        if value is None:
            return None if self.allow_null else REJECT
        try:
            return self.to_internal_value(value)
        except ValidationError:
            return REJECT


class TagsField(serializers.ListField):
    """A list of 1-100 character strings, at most 50 as sent; null is []. (Services drop duplicates.)"""

    def __init__(self, **kwargs):
        super().__init__(child=StrictCharField(min_length=1, max_length=100), max_length=50, allow_null=True, **kwargs)

    def run_validation(self, data=serializers.empty):
        if data is None:
            return []
        return super().run_validation(data)

    fast_validators = (MaxLengthValidator, MinLengthValidator)

    def accept(self, value):
        if value is None:
            return []
        if (
            not isinstance(value, list)
            or (not value and not self.allow_empty)
            or (self.max_length is not None and len(value) > self.max_length)
            or (self.min_length is not None and len(value) < self.min_length)
        ):
            return REJECT
        tags = []
        for item in value:
            tag = self.child.accept(item)
            if tag is REJECT:
                return REJECT
            tags.append(tag)
        return tags


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

    @classmethod
    def accepted(cls, data: dict[str, Any]) -> dict[str, Any] | None:
        """`data` validated without DRF's per-field machinery, or None: then DRF's path must run.

        The fast path takes a body only when every field takes its value as it is (each field's `accept`
        states the same rules as its DRF validation, for values that pass them) and the serializer's
        `validate_<field>` methods and `validate` raise nothing. Anything else, every invalid body among
        it, returns None and goes through `is_valid`, which finds and explains the problems. Validating
        a create body this way costs a fifth of DRF's path (docs/performance.md);
        tests/superai_flow/test_serializers.py checks that both paths agree.
        """
        plan = cls._fast_plan()
        if plan is None:
            return None
        declared = cls._declared_fields
        if any(key not in declared or declared[key].read_only for key in data):
            return None
        validated = {}
        serializer = None
        for name, field, validate_method in plan:
            value = data.get(name, empty)
            if value is empty:
                if field.required:
                    return None
                if field.default is empty:
                    continue
                value = field.get_default()
            else:
                value = field.accept(value)
                if value is REJECT:
                    return None
            if validate_method is not None:
                serializer = serializer or cls(data=data)
                try:
                    value = validate_method(serializer, value)
                except ValidationError:
                    return None
            validated[name] = value
        try:
            return (serializer or cls(data=data)).validate(validated)
        except ValidationError:
            return None

    @classmethod
    def _fast_plan(cls) -> list[tuple[str, serializers.Field, Any]] | None:
        """Per writable field: (name, field, validate_<name> method or None); None if a field has no fast path."""
        if "_fast_plan_cache" not in cls.__dict__:
            plan = []
            for name, field in cls._declared_fields.items():
                if field.read_only:
                    continue
                supported = (
                    hasattr(field, "accept")
                    and field.source in (None, name)
                    and not callable(getattr(field.default, "requires_context", None))
                    and all(isinstance(v, getattr(field, "fast_validators", ())) for v in field.validators)
                )
                if not supported:
                    plan = None
                    break
                plan.append((name, field, getattr(cls, f"validate_{name}", None)))
            meta_validators = getattr(getattr(cls, "Meta", None), "validators", None)
            cls._fast_plan_cache = None if meta_validators else plan
        return cls._fast_plan_cache

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
