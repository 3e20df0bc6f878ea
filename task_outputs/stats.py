"""GET /task-outputs/stats: counts and summary-value statistics per group, computed in the database.

Contract: "GET /task-outputs/stats". The filtered list query (the same filters, within the caller's
row-level-security scope like every query) becomes a subquery; one GROUP BY over it gives each group's
count and, per `metric=summary.<path>`, the count of outputs with a number there, min, max, avg, sum and
the percentiles. On PostgreSQL one aggregate, `superai_number_stats` (task_outputs/migrations/0010), gives
all of a metric's figures and runs in parallel workers; its percentiles interpolate as `percentile_cont`
does. SQLite has no percentiles, so there a second query reads each metric's numbers in group order and
this module interpolates them the same way. Numbers are read as doubles, as JSON clients read them
(PostgreSQL: one float8 per row, which is what keeps a million rows near a second, docs/performance.md;
numbers beyond ±1e290 are skipped there, so that no sum overflows). Values that are not numbers are
skipped, never an error. `group_by=tag` counts an output once under each of its tags (and under `null`
when it has none).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from rest_framework.exceptions import ErrorDetail, ValidationError

from superai_flow.json_queries import json_path, sqlite_path
from task_outputs.models import TaskOutput

GROUPS = ("task_name", "status", "flow_execution_id", "tag", "hour", "day")
MAX_GROUP_BY = 2
MAX_METRICS = 5
MAX_GROUPS = 1_000
PERCENTILES = (("p50", 0.5), ("p95", 0.95))  # superai_number_stats computes these two
# PostgreSQL: a query the planner expects to read more numbers than this (outputs times metrics) sorts them
# in parallel workers, spilling to disk as it needs, instead of holding them in memory: 8 bytes a number,
# 40 MB at the limit, up to about four times that with the workers' growing arrays and the sorted copy.
MAX_NUMBERS_IN_MEMORY = 5_000_000
_COLUMNS = ("id", "created_at", "task_name", "status", "flow_execution_id", "tags", "summary")


@dataclass(frozen=True)
class StatsQuery:
    group_by: tuple[str, ...]
    metrics: tuple[tuple[str, ...], ...]  # summary paths


def _invalid(field: str, message: str, code: str = "invalid") -> ValidationError:
    return ValidationError({field: [ErrorDetail(message, code=code)]})


def _values(request, name: str) -> list[str]:
    """A repeatable parameter's values, commas splitting them too (`group_by=status,day`)."""
    return [part for value in request.query_params.getlist(name) for part in value.split(",")]


def stats_query(request) -> StatsQuery:
    group_by = list(dict.fromkeys(_values(request, "group_by")))
    for name in group_by:
        if name not in GROUPS:
            raise _invalid("group_by", f"Unknown group {name!r}: choose from {', '.join(GROUPS)}.", "invalid_choice")
    if len(group_by) > MAX_GROUP_BY:
        raise _invalid("group_by", f"Group by at most {MAX_GROUP_BY} of them.", "too_many")
    metrics = []
    for entry in dict.fromkeys(_values(request, "metric")):
        path = json_path(entry.removeprefix("summary.")) if entry.startswith("summary.") else None
        if path is None:
            message = f"{entry!r}: use summary.<key>, or dotted keys for nested objects."
            raise _invalid("metric", message, "invalid_path")
        metrics.append(tuple(path))
    if len(metrics) > MAX_METRICS:
        raise _invalid("metric", f"At most {MAX_METRICS} metrics.", "too_many")
    return StatsQuery(tuple(group_by), tuple(metrics))


def task_output_stats(
    queryset: QuerySet[TaskOutput], query: StatsQuery, *, scope: QuerySet[TaskOutput] | None = None
) -> dict[str, Any]:
    """The stats body for the outputs `queryset` selects (already filtered and scoped).

    `scope` holds every output the query could select, its filters aside (default: `queryset`): on PostgreSQL
    the planner's row count for it decides where percentiles are computed (`_in_memory`)."""
    inner, inner_params = queryset.order_by().values(*_COLUMNS).query.sql_with_params()
    sql = _Sql(connection.vendor, query)
    rows_sql, rows_params = sql.rows(inner, inner_params)
    keys = [f"k{i}" for i in range(len(query.group_by))]
    select = [*keys, "count(*)"]
    in_memory = False
    if sql.postgresql and query.metrics:
        scoped = scope.order_by().values(*_COLUMNS).query.sql_with_params() if scope is not None else None
        scope_sql, scope_params = sql.rows(*scoped) if scoped else (rows_sql, rows_params)
        in_memory = _in_memory(scope_sql, scope_params, query)
    for i in range(len(query.metrics)):
        # PostgreSQL: one float8[] per metric, [count, min, max, sum, p50, p95].
        if in_memory:  # task_outputs/migrations/0010_stats_aggregate.py
            select.append(f"superai_number_stats(v{i})")
        elif sql.postgresql:
            fractions = ", ".join(str(fraction) for _, fraction in PERCENTILES)
            percentiles = f"percentile_cont(ARRAY[{fractions}]) WITHIN GROUP (ORDER BY v{i})"
            nulls = ", ".join("NULL" for _ in PERCENTILES)
            select.append(f"ARRAY[count(v{i}), min(v{i}), max(v{i}), sum(v{i})]"
                          f" || coalesce({percentiles}, ARRAY[{nulls}]::float8[])")  # fmt: skip
        else:
            select += [f"count(v{i})", f"min(v{i})", f"max(v{i})", f"sum(v{i})"]
    if sql.postgresql and query.metrics and not in_memory:
        # Sorted here, the rows reach the ordered-set aggregate (percentile_cont) in order, and the sort runs in
        # parallel workers (spilling to disk as it needs): 3.3 times faster than letting the aggregate sort.
        rows_sql += f" ORDER BY {', '.join([*keys, 'v0'])}"
    grouping = f" GROUP BY {', '.join(keys)} ORDER BY {', '.join(f'{k} NULLS LAST' for k in keys)}" if keys else ""
    statement = f"SELECT {', '.join(select)} FROM ({rows_sql}) AS s{grouping} LIMIT {MAX_GROUPS + 1}"
    with connection.cursor() as cursor:
        cursor.execute(statement, rows_params)
        rows = cursor.fetchall()
        if len(rows) > MAX_GROUPS:
            message = f"More than {MAX_GROUPS:,} groups: narrow the query (filters, fewer or coarser groups)."
            raise _invalid("group_by", message, "too_many_groups")
        if "tag" in query.group_by:  # an output counts once per tag: the total is counted apart
            cursor.execute(f"SELECT count(*) FROM ({inner}) AS t", inner_params)
            total = cursor.fetchone()[0]
        else:
            total = sum(row[len(keys)] for row in rows)
    groups = []
    for row in rows:
        group: dict[str, Any] = {
            "key": {name: _key_value(name, value) for name, value in zip(query.group_by, row, strict=False)},
            "count": row[len(keys)],
        }
        if query.metrics:
            group["metrics"] = {}
            position = len(keys) + 1
            for path in query.metrics:
                if sql.postgresql:
                    count, low, high, total_value, *percentiles = row[position]
                    position += 1
                else:
                    count, low, high, total_value = row[position : position + 4]
                    percentiles = [None] * len(PERCENTILES)
                    position += 4
                count = int(count)
                # The sum over the count: PostgreSQL's avg(float8) also sums the squares, which overflow from 1e154.
                mean = total_value / count if count else None
                stat = {"count": count, "min": low, "max": high, "avg": mean, "sum": total_value}
                stat.update((name, value) for (name, _), value in zip(PERCENTILES, percentiles, strict=True))
                group["metrics"]["summary." + ".".join(path)] = stat
        groups.append(group)
    if query.metrics and not sql.postgresql:
        _percentiles_in_python(groups, rows, rows_sql, rows_params, query)
    for group in groups:
        for stat in group.get("metrics", {}).values():
            stat.update((name, _number(value, name)) for name, value in stat.items())
    return {"groups": groups, "total": total}


class _Sql:
    """The SQL for one stats query that differs between PostgreSQL and SQLite: group keys, metric values, joins."""

    def __init__(self, vendor: str, query: StatsQuery):
        self.postgresql = vendor == "postgresql"
        self.keys = [self._key(name) for name in query.group_by]
        self.joins = ""
        if "tag" in query.group_by:
            self.joins += (
                " LEFT JOIN LATERAL jsonb_array_elements_text(t.tags) AS tag(value) ON true"
                if self.postgresql
                else " LEFT JOIN json_each(t.tags) AS tag"
            )
        self.values = []
        for path in query.metrics:
            if self.postgresql:
                # A float8 per row and nothing else: a numeric beside it for exact sums cost 30% more at a
                # million rows. `->` for one key is faster than `#>`. The number is read from its text
                # (`->>`: plain digits, never an exponent), which is how PostgreSQL casts a jsonb number to
                # float8 anyway, without building jsonb and numeric values on the way: the expression costs
                # 0.6 of the cast's (docs/performance.md, "Stats, third look"). A number whose integer part
                # has more than 290 characters (about ±1e290 and beyond) is skipped, so that no sum of any
                # number of rows overflows (a float8 overflow is an error, not infinity); the length alone
                # decides for all but numbers of 291 characters or more.
                json, text, path_params = (
                    ("t.summary -> %s", "t.summary ->> %s", [path[0]])
                    if len(path) == 1
                    else ("t.summary #> %s::text[]", "t.summary #>> %s::text[]", [list(path)])
                )
                value = (
                    f"(CASE WHEN jsonb_typeof({json}) = 'number'"
                    f" AND (length({text}) < 291 OR strpos({text}, '.') BETWEEN 1 AND 291)"
                    f" THEN ({text})::float8 END)"
                )
                self.values.append((value, path_params * 4))
            else:
                where = sqlite_path(path)
                value = (
                    "(CASE WHEN json_type(t.summary, %s) IN ('integer', 'real') THEN json_extract(t.summary, %s) END)"
                )
                self.values.append((value, [where, where]))

    def rows(self, inner: str, inner_params) -> tuple[str, list]:
        """A row per output (per output and tag, grouping by tag): its keys k0.. and its metric values v0.."""
        columns = [f"{expr} AS k{i}" for i, (expr, _) in enumerate(self.keys)]
        params = [p for _, key_params in self.keys for p in key_params]
        for i, (value, value_params) in enumerate(self.values):
            columns.append(f"{value} AS v{i}")
            params += value_params
        sql = f"SELECT {', '.join(columns) or '1 AS one'} FROM ({inner}) AS t{self.joins}"
        return sql, [*params, *inner_params]

    def _key(self, name: str) -> tuple[str, list]:
        if name == "tag":
            return "tag.value", []
        if name in ("hour", "day"):
            if self.postgresql:
                return f"date_trunc('{name}', t.created_at AT TIME ZONE 'UTC')", []
            pattern = "%Y-%m-%dT%H:00:00Z" if name == "hour" else "%Y-%m-%dT00:00:00Z"
            return "strftime(%s, t.created_at)", [pattern]
        return f"t.{name}", []


def _in_memory(scope_sql: str, scope_params, query: StatsQuery) -> bool:
    """PostgreSQL: whether the metrics' numbers may be held in memory (superai_number_stats keeps 8 bytes per
    number, the whole group's at once in the leader, and an array holds at most 134 million): yes when the
    planner expects at most MAX_NUMBERS_IN_MEMORY numbers in the scope's rows, whatever the filters select
    of them (a filter on a summary value can match far more rows than the planner expects)."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {scope_sql}", scope_params)
        plan = cursor.fetchone()[0]  # psycopg reads the json
    return plan[0]["Plan"]["Plan Rows"] * len(query.metrics) <= MAX_NUMBERS_IN_MEMORY


def _percentiles_in_python(groups, rows, rows_sql: str, rows_params, query: StatsQuery) -> None:
    """SQLite: each metric's numbers per group, interpolated as PostgreSQL's percentile_cont does."""
    width = len(query.group_by)
    by_key = {tuple(row[:width]): group for row, group in zip(rows, groups, strict=True)}
    keys = [f"k{i}" for i in range(width)]
    for i, path in enumerate(query.metrics):
        numbers: dict[tuple, list] = {}
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {', '.join([*keys, f'v{i}'])} FROM ({rows_sql}) AS s WHERE v{i} IS NOT NULL",
                           rows_params)  # fmt: skip
            for row in cursor.fetchall():
                numbers.setdefault(tuple(row[:width]), []).append(row[width])
        name = "summary." + ".".join(path)
        for key, group in by_key.items():
            ordered = sorted(numbers.get(key, []))
            for label, fraction in PERCENTILES:
                group["metrics"][name][label] = _percentile(ordered, fraction)


def _percentile(numbers: list[float], fraction: float) -> float | None:
    """percentile_cont: linear interpolation between the closest ranks."""
    if not numbers:
        return None
    position = fraction * (len(numbers) - 1)
    low, high = math.floor(position), math.ceil(position)
    return numbers[low] + (numbers[high] - numbers[low]) * (position - low)


def _key_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):  # PostgreSQL's date_trunc of the UTC time
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if name == "flow_execution_id":  # a UUID (PostgreSQL) or its 32 hex digits (SQLite)
        return str(uuid.UUID(str(value)))
    return value


def _number(value: Any, name: str) -> Any:
    """JSON-ready: counts as integers, integral min, max and sum as integers (within a double's exact range),
    the rest as floats."""
    if isinstance(value, float) and name in ("min", "max", "sum") and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value
