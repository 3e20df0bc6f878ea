"""Keyset (cursor) pagination over (key, id): stable while rows are inserted between pages.

A cursor names the last row seen, so a page never repeats or skips a row whatever is inserted
elsewhere. Cursors are opaque to clients (base64 of a small JSON document) and tied to the ordering
they were made for. They can also carry what a traversal decided on its first page (`begin`).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F, Q, QuerySet, Value
from django.db.models.expressions import Col
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.db.models.lookups import Exact, GreaterThan, LessThan
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError({field: [ErrorDetail(message, code="invalid")]})


class KeysetPagination(BasePagination):
    """`?page_size=` (1-500, default 50) and `?cursor=`; answers `{"results", "next", "previous"}`."""

    query_params = ("cursor", "page_size")

    def paginate_queryset(self, queryset: QuerySet, request, view=None):
        self.request = request
        page_size = self._page_size(request)
        order_by = list(queryset.query.order_by or queryset.model._meta.ordering)
        # The keys rows are ordered by, (name, descending), ending with the primary key: a total order.
        self.keys = [(name.lstrip("-"), name.startswith("-")) for name in order_by]
        if self.keys[-1][0] not in ("id", "pk"):
            self.keys.append(("id", self.keys[-1][1]))
        default = ("-" if order_by[0].startswith("-") else "") + self.public_key(order_by[0].lstrip("-"))
        self.ordering = request.query_params.get("ordering") or default
        cursor = request.query_params.get("cursor")
        if cursor is not None:
            position, backwards, self.carry = self._decode(cursor, queryset)
        else:
            position, backwards, self.carry = None, False, self.begin()

        # Walking backwards means walking the opposite order, then reversing the page.
        walk = [(name, descending != backwards) for name, descending in self.keys]
        if position is not None:
            seek = [(self.seek_key(queryset, name), down) for name, down in walk]
            queryset = queryset.filter(self._past(queryset, seek, position))
        rows = list(queryset.order_by(*(f"-{name}" if down else name for name, down in walk))[: page_size + 1])
        more = len(rows) > page_size
        rows = rows[:page_size]
        if backwards:
            rows.reverse()

        first, last = (rows[0], rows[-1]) if rows else (None, None)
        if backwards:
            self.previous_position = self._position(first) if more else None
            self.next_position = self._position(last) if last else position
        else:
            self.next_position = self._position(last) if more else None
            self.previous_position = (self._position(first) if first else position) if position else None
        return rows

    def public_key(self, name: str) -> str:
        """The ordering parameter's name for the key `name` (a cursor names the ordering it was made for)."""
        return name

    def seek_key(self, queryset: QuerySet, name: str) -> str:
        """What the seek condition compares for the key `name`: the key itself, unless a subclass knows a column
        with the same value that an index of the walk holds (a joined table's copy of it)."""
        return name

    @staticmethod
    def _past(queryset: QuerySet, walk: list[tuple[str, bool]], position: tuple) -> Q:
        """Rows after `position` in the order `walk` ((name, descending) per key)."""
        downs = {down for _, down in walk}
        annotations = queryset.query.annotations
        if len(downs) == 1 and all(isinstance(annotations.get(name), Col | None) for name, _ in walk):
            # A row-value comparison, (key, id) < (value, pk): PostgreSQL seeks the (..., key, id) index to the
            # position instead of reading every row before it (a deep page cost as much as all pages before).
            # Keys are columns, of the model or of a joined table (a tag-filtered list's tag row).
            # SQLite gets Django's equivalent OR/AND form.
            past = TupleLessThan if downs.pop() else TupleGreaterThan
            return Q(past(Tuple(*(F(name) for name, _ in walk)), position))
        # Keys in mixed directions (or computed ones): k1 beyond v1, or k1 = v1 and (k2 beyond v2, or ...).
        condition = Q(pk__in=[])
        for (name, down), value in reversed(list(zip(walk, position, strict=True))):
            beyond = (LessThan if down else GreaterThan)(F(name), Value(value))
            condition = Q(beyond) | (Q(Exact(F(name), Value(value))) & condition)
        return condition

    def begin(self) -> dict[str, Any]:
        """What a traversal settles on its first page and keeps in its cursors; nothing by default."""
        return {}

    def get_paginated_response(self, data):
        next_link, previous_link = self._link(self.next_position, False), self._link(self.previous_position, True)
        return Response({"results": data, "next": next_link, "previous": previous_link})

    def get_paginated_response_schema(self, schema):
        link = {"type": "string", "format": "uri", "nullable": True}
        return {
            "type": "object",
            "required": ["results", "next", "previous"],
            "properties": {"results": schema, "next": link, "previous": link},
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": "Where a page starts: take it from the `next` or `previous` link of a page.",
                "schema": {"type": "string"},
            },
            {
                "name": "page_size",
                "in": "query",
                "required": False,
                "description": "Records per page.",
                "schema": {"type": "integer", "minimum": 1, "maximum": settings.API_MAX_PAGE_SIZE, "default": 50},
            },
        ]

    def _page_size(self, request) -> int:
        raw = request.query_params.get("page_size")
        if raw is None:
            return settings.API_DEFAULT_PAGE_SIZE
        maximum = settings.API_MAX_PAGE_SIZE
        if not raw.isdigit() or not 1 <= int(raw) <= maximum:
            raise _invalid("page_size", f"Must be an integer from 1 to {maximum}.")
        return int(raw)

    def _position(self, row) -> tuple:
        return tuple(getattr(row, name) for name, _ in self.keys)

    def _link(self, position, backwards: bool) -> str | None:
        if position is None:
            return None
        values = [_cursor_value(value) for value in position]
        document = {"o": self.ordering, "k": values, "b": backwards, "x": self.carry}
        token = base64.urlsafe_b64encode(json.dumps(document, separators=(",", ":")).encode()).decode().rstrip("=")
        return replace_query_param(self.request.build_absolute_uri(), "cursor", token)

    def _decode(self, token: str, queryset: QuerySet) -> tuple[tuple, bool, dict[str, Any]]:
        invalid = _invalid("cursor", "Invalid cursor; use the `next` or `previous` link of a page.")
        try:
            document = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            values = document["k"]
            ordering, backwards, carry = document["o"], document["b"], document["x"]
        except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
            raise invalid from None
        if ordering != self.ordering:
            raise _invalid("cursor", f"This cursor was made for ordering={ordering}; start again without it.")
        if not isinstance(values, list) or len(values) != len(self.keys):
            raise invalid
        annotations = queryset.query.annotations
        try:
            position = []
            for (name, _), value in zip(self.keys, values, strict=True):
                field = annotations[name].output_field if name in annotations else queryset.model._meta.get_field(name)
                key = field.to_python(value)
                if key is None or (isinstance(key, datetime) and key.tzinfo is None):
                    raise invalid
                position.append(key)
        except (ValueError, TypeError, ArithmeticError, DjangoValidationError):
            raise invalid from None
        if not isinstance(backwards, bool) or not isinstance(carry, dict):
            raise invalid
        return tuple(position), backwards, carry


def _cursor_value(value: Any) -> Any:
    """A key's value as it goes into a cursor's JSON: times in ISO 8601, UUIDs and exact decimals as text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    return value
