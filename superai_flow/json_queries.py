"""Boolean conditions on JSON columns, written for PostgreSQL (jsonb) and SQLite (JSON1).

Django's own JSON lookups do not fit the contract: on PostgreSQL `summary__n__gt=5` compares across
JSON types (true > 5), and `tags__contains` does not exist on SQLite. These conditions match only
values of the right type and never raise on mismatched data.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.db import NotSupportedError
from django.db.models import BooleanField, Expression, F, Field, IntegerField, TextField

from superai_flow.serializers import text_problem

COMPARISONS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class _OnJSONColumn(Expression):
    """An expression on one JSON column; subclasses write the SQL for each database (as_postgresql, as_sqlite)."""

    def __init__(self, column: str, output_field):
        super().__init__(output_field=output_field)
        self.column = F(column)

    def get_source_expressions(self):
        return [self.column]

    def set_source_expressions(self, exprs):
        (self.column,) = exprs

    def as_sql(self, compiler, connection):
        raise NotSupportedError(f"JSON queries support PostgreSQL and SQLite, not {connection.vendor}.")


class _JSONCondition(_OnJSONColumn):
    """A condition on one JSON column."""

    def __init__(self, column: str):
        super().__init__(column, BooleanField())


def json_path(text: str) -> list[str] | None:
    """The object keys of a dotted path (`stats.rows`), or None when a key is empty or not storable text."""
    keys = text.split(".")
    return keys if all(keys) and not any(text_problem(key) for key in keys) else None


def sqlite_path(path: list[str]) -> str:
    """`path` as a SQLite JSON path: `$."stats"."rows"`."""
    return "$" + "".join(f".{json.dumps(key)}" for key in path)


class JSONArrayContainsAll(_JSONCondition):
    """The JSON array in `column` contains every one of `values` (strings)."""

    def __init__(self, column: str, values: list[str]):
        super().__init__(column)
        self.values = list(values)

    def as_postgresql(self, compiler, connection):
        lhs, params = compiler.compile(self.column)
        return f"{lhs} @> %s::jsonb", [*params, json.dumps(self.values)]

    def as_sqlite(self, compiler, connection):
        lhs, params = compiler.compile(self.column)
        clause = f"EXISTS (SELECT 1 FROM json_each({lhs}) AS element WHERE element.value = %s)"
        sql = " AND ".join([clause] * len(self.values)) or "1 = 1"
        return f"({sql})", [p for value in self.values for p in (*params, value)]


class JSONPathEquals(_JSONCondition):
    """The value at `path` (object keys) in `column` equals `value` as JSON: 200 matches 200.0, not "200"."""

    def __init__(self, column: str, path: list[str], value: Any):
        super().__init__(column)
        self.path = list(path)
        self.value = value

    def as_postgresql(self, compiler, connection):
        lhs, params = compiler.compile(self.column)
        nested: Any = self.value
        for key in reversed(self.path):
            nested = {key: nested}
        # Containment lets the GIN index narrow the rows. For a number, string, boolean or null at an object
        # path it is the match itself (200 contains 200.0, an array [200] does not contain 200); an array or
        # object is contained by larger ones, so the path comparison makes that match exact. A condition
        # only where needed: the planner multiplies the guesses of both, and with both it expected a
        # hundredth of the rows and read every match of a common value instead of the newest.
        if self.value is None or isinstance(self.value, bool | int | float | str):
            return f"{lhs} @> %s::jsonb", [*params, json.dumps(nested)]
        sql = f"({lhs} @> %s::jsonb AND ({lhs} #> %s::text[]) = %s::jsonb)"
        return sql, [*params, json.dumps(nested), *params, self.path, json.dumps(self.value)]

    def as_sqlite(self, compiler, connection):
        lhs, params = compiler.compile(self.column)
        path = sqlite_path(self.path)
        value = self.value
        json_type = f"json_type({lhs}, %s)"
        if value is None or isinstance(value, bool):
            kind = "null" if value is None else str(value).lower()
            return f"{json_type} = %s", [*params, path, kind]
        if isinstance(value, int | float):
            sql = f"({json_type} IN ('integer', 'real') AND json_extract({lhs}, %s) = %s)"
            return sql, [*params, path, *params, path, value]
        if isinstance(value, str):
            return f"({json_type} = 'text' AND json_extract({lhs}, %s) = %s)", [*params, path, *params, path, value]
        kind = "array" if isinstance(value, list) else "object"
        sql = f"({json_type} = %s AND json_extract({lhs}, %s) = json(%s))"
        return sql, [*params, path, kind, *params, path, json.dumps(value, separators=(",", ":"))]


class JSONPathCompare(_JSONCondition):
    """The value at `path` in `column` is a number and compares to `number` by `operator` (gt, gte, lt, lte)."""

    def __init__(self, column: str, path: list[str], operator: str, number: int | float):
        super().__init__(column)
        self.path = list(path)
        self.operator = COMPARISONS[operator]
        self.number = number

    def as_postgresql(self, compiler, connection):
        lhs, params = compiler.compile(self.column)
        # CASE keeps the cast away from non-numbers; a plain AND would not guarantee the order.
        value = f"({lhs} #> %s::text[])"
        sql = f"(CASE WHEN jsonb_typeof({value}) = 'number' THEN {value}::numeric END) {self.operator} %s"
        return sql, [*params, self.path, *params, self.path, Decimal(repr(self.number))]

    def as_sqlite(self, compiler, connection):
        lhs, params = compiler.compile(self.column)
        path = sqlite_path(self.path)
        sql = (
            f"(CASE WHEN json_type({lhs}, %s) IN ('integer', 'real') THEN json_extract({lhs}, %s) END) "
            f"{self.operator} %s"
        )
        return sql, [*params, path, *params, path, self.number]


class _JSONPathValue(_OnJSONColumn):
    """A value computed from what is at `path` (object keys) in the JSON `column`; never an error on odd data."""

    def __init__(self, column: str, path: list[str], output_field):
        super().__init__(column, output_field)
        self.path = list(path)


# Ordering by a JSON value (`ordering=summary.<path>`) sorts by three keys, none of them NULL, so that a
# keyset condition can compare them like any column: the kind (numbers, then strings, then the rest), the
# number (0 when not one) and the string ('' when not one). On PostgreSQL the path is written into the SQL
# as a constant, not sent as a parameter: a statement the server has prepared may be planned once for any
# parameters (a generic plan), and such a plan cannot use an index made on the expression for one path
# (`manage.py summary_sort_index`).


def _pg_path(connection, path: list[str]) -> str:
    """`path` as a PostgreSQL text[] constant, quoted by psycopg."""
    return f"{connection.ops.compose_sql('%s', [path])}::text[]"


class JSONPathKind(_JSONPathValue):
    """0 when the value at `path` is a number, 1 when a string, 2 when anything else or missing."""

    def __init__(self, column: str, path: list[str]):
        super().__init__(column, path, IntegerField())

    def as_postgresql(self, compiler, connection):
        lhs, params = compiler.compile(self.column)
        path = _pg_path(connection, self.path)
        sql = f"(CASE jsonb_typeof({lhs} #> {path}) WHEN 'number' THEN 0 WHEN 'string' THEN 1 ELSE 2 END)"
        return sql, params

    def as_sqlite(self, compiler, connection):
        lhs, params = compiler.compile(self.column)
        sql = f"(CASE json_type({lhs}, %s) WHEN 'integer' THEN 0 WHEN 'real' THEN 0 WHEN 'text' THEN 1 ELSE 2 END)"
        return sql, [*params, sqlite_path(self.path)]


class JSONNumberField(Field):
    """A JSON number as the database gives it, unconverted: a Decimal from PostgreSQL's `numeric` (exact, however
    large), an int or a float from SQLite. `to_python` reads it back from a cursor (a Decimal as text)."""

    def to_python(self, value):
        if isinstance(value, str):
            value = Decimal(value)
            if not value.is_finite():
                raise ValueError("not a finite number")
        elif isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise ValueError("not a number")
        return value


class JSONPathNumber(_JSONPathValue):
    """The number at `path`, else 0."""

    def __init__(self, column: str, path: list[str]):
        super().__init__(column, path, JSONNumberField())

    def as_postgresql(self, compiler, connection):
        lhs, params = compiler.compile(self.column)
        value = f"({lhs} #> {_pg_path(connection, self.path)})"
        sql = f"COALESCE(CASE WHEN jsonb_typeof({value}) = 'number' THEN {value}::numeric END, 0)"
        return sql, [*params, *params]

    def as_sqlite(self, compiler, connection):
        lhs, params = compiler.compile(self.column)
        path = sqlite_path(self.path)
        sql = f"COALESCE(CASE WHEN json_type({lhs}, %s) IN ('integer', 'real') THEN json_extract({lhs}, %s) END, 0)"
        return sql, [*params, path, *params, path]


class JSONPathText(_JSONPathValue):
    """The string at `path`, else ''; compared in code point order ('B' before 'a') on both databases."""

    def __init__(self, column: str, path: list[str]):
        super().__init__(column, path, TextField())

    def as_postgresql(self, compiler, connection):
        lhs, params = compiler.compile(self.column)
        # Code point order, as SQLite (and Python) compare strings, whatever the database's collation.
        path = _pg_path(connection, self.path)
        value = f"CASE WHEN jsonb_typeof({lhs} #> {path}) = 'string' THEN {lhs} #>> {path} END"
        sql = f"(COALESCE({value}, '') COLLATE \"C\")"
        return sql, [*params, *params]

    def as_sqlite(self, compiler, connection):
        lhs, params = compiler.compile(self.column)
        path = sqlite_path(self.path)
        sql = f"COALESCE(CASE WHEN json_type({lhs}, %s) = 'text' THEN json_extract({lhs}, %s) END, '')"
        return sql, [*params, path, *params, path]
