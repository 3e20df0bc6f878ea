"""GET /task-outputs/export: every matching task output, streamed as NDJSON or CSV (contract: "GET
/task-outputs/export").

The rows come from one SELECT read through a server-side cursor (PostgreSQL; SQLite reads its cursor
lazily) in a thread of the export's own, inside a transaction scoped to the caller's organizations: one
statement, so one consistent snapshot however long the download takes, and the request's worker thread
is free again as soon as the headers are out. That thread hands the body over in chunks of about
CHUNK_BYTES through a queue of QUEUED_CHUNKS, so a slow client holds the reading back instead of the
server buffering the result: memory stays flat whatever the row count. At most EXPORTS_AT_ONCE exports
run per process (each holds a database connection while it streams); more answer 429.

Errors found before the first byte (filters, `fields`, `format`) are 422s with the envelope, like the list's.
A database error while streaming cuts the response short (the body then ends without its last line, and
the connection closes), and is logged.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import queue
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from rest_framework.exceptions import ErrorDetail, ValidationError

from superai_flow.exceptions import TooManyRequests
from superai_flow.tenancy import tenant_scope
from task_outputs.api.serializers import RECORD, Fields, represent, summary_at
from task_outputs.models import TaskOutput

logger = logging.getLogger(__name__)

FORMATS = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
# The CSV's columns before the summary's (contract); `fields=` chooses others.
CSV_COLUMNS = (
    "id", "flow_execution_id", "task_execution_id", "task_name", "status", "tags", "created_at", "updated_at"
)  # fmt: skip
CSV_SUMMARY_SAMPLE = 1_000  # the summary columns are the paths found in this many first rows
CHUNK_BYTES = 64 * 1024
QUEUED_CHUNKS = 8
ROWS_PER_FETCH = 2_000
_DONE = object()

_running = threading.BoundedSemaphore(settings.EXPORTS_AT_ONCE)


def export_format(request) -> str:
    value = request.query_params.get("format", "ndjson")
    if value not in FORMATS:
        message = "Use format=ndjson (the default) or format=csv."
        raise ValidationError({"format": [ErrorDetail(message, code="invalid")]})
    return value


def export_response(
    queryset: QuerySet[TaskOutput], *, fields: Fields | None, fmt: str, organization_ids, head: bool = False
) -> HttpResponse | StreamingHttpResponse:
    """The streamed export of `queryset` (filtered and ordered), read in its own thread within `organization_ids`.

    For HEAD, the headers alone (daphne would send a streamed body even then)."""
    if head:
        return _with_disposition(HttpResponse(content_type=FORMATS[fmt]), fmt)
    if not _running.acquire(blocking=False):
        raise TooManyRequests(
            f"At most {settings.EXPORTS_AT_ONCE} exports run at once on this server; try again shortly.",
            retry_after=5,
        )
    slot = _Slot()
    lines = _ndjson_lines if fmt == "ndjson" else _csv_lines
    chunks = _in_a_thread(lambda: _chunks(lines(_rows(queryset, organization_ids), fields)), release=slot.release)
    return _with_disposition(_ExportResponse(chunks, slot=slot, content_type=FORMATS[fmt]), fmt)


def _with_disposition(response: HttpResponse | StreamingHttpResponse, fmt: str):
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="task-outputs-{stamp}.{fmt}"'
    return response


class _Slot:
    """One export's place among EXPORTS_AT_ONCE, given back once, by whichever ends first: its reading thread,
    or the response's close() (a body never read, say, starts no thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = True

    def release(self) -> None:
        with self._lock:
            if self._held:
                self._held = False
                _running.release()


class _ExportResponse(StreamingHttpResponse):
    def __init__(self, *args, slot: _Slot, **kwargs):
        super().__init__(*args, **kwargs)
        self._slot = slot

    def close(self) -> None:
        self._slot.release()
        super().close()


def _rows(queryset: QuerySet[TaskOutput], organization_ids) -> Iterator[TaskOutput]:
    """The rows of one SELECT, read lazily, inside a transaction scoped to `organization_ids`."""
    if connection.vendor == "sqlite":
        # A read transaction (DEFERRED: writers go on; WAL keeps this snapshot), not Django's atomic(),
        # which this project's SQLite settings make IMMEDIATE: it would hold every writer back meanwhile.
        with connection.cursor() as cursor:
            cursor.execute("BEGIN DEFERRED")
        try:
            yield from queryset.iterator(chunk_size=ROWS_PER_FETCH)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("ROLLBACK")
        return
    scope = None if organization_ids is None else list(organization_ids)
    with tenant_scope(scope, bypass_reason="an export by a superuser"):
        yield from queryset.iterator(chunk_size=ROWS_PER_FETCH)


def _ndjson_lines(rows: Iterable[TaskOutput], fields: Fields | None) -> Iterator[str]:
    for row in rows:
        yield json.dumps(represent(row, fields), ensure_ascii=False, separators=(",", ":")) + "\n"


def _csv_lines(rows: Iterable[TaskOutput], fields: Fields | None) -> Iterator[str]:
    """A header, then a line per row: the record's columns, then one per summary path (dotted)."""
    rows = iter(rows)
    sample = [row for _, row in zip(range(CSV_SUMMARY_SAMPLE), rows, strict=False)]
    if fields is None:
        columns, summary_paths = list(CSV_COLUMNS), _summary_paths(sample)
    else:
        columns = [name for name in fields.names if name != "summary"]
        if "summary" not in fields.names:
            summary_paths = []
        elif fields.summary_paths is not None:
            summary_paths = list(fields.summary_paths)
        else:
            summary_paths = _summary_paths(sample)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(values: list[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(columns + ["summary." + ".".join(path) for path in summary_paths])
    for row in _chain(sample, rows):
        values = [_csv_value(name, RECORD[name](row)) for name in columns]
        summary = summary_at(row.summary, tuple(summary_paths)) if summary_paths else {}
        values += [_csv_cell(_at(summary, path)) for path in summary_paths]
        yield line(values)


def _chain(first: list, rest: Iterator) -> Iterator:
    yield from first
    first.clear()  # the sample is not kept for the rest of the export
    yield from rest


def _summary_paths(rows: list[TaskOutput]) -> list[tuple[str, ...]]:
    """Every path to a value that is not an object, in the sample's summaries, in the order first found."""
    found: dict[tuple[str, ...], None] = {}

    def walk(value: Any, path: tuple[str, ...]) -> None:
        if isinstance(value, dict) and value:
            for key, child in value.items():
                walk(child, (*path, key))
        elif path:
            found.setdefault(path, None)

    for row in rows:
        if isinstance(row.summary, dict):
            walk(row.summary, ())
    return list(found)


def _at(summary: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(summary, dict) or key not in summary:
            return None
        summary = summary[key]
    return summary


def _csv_value(name: str, value: Any) -> str:
    if name == "tags":
        return "|".join(value)
    return _csv_cell(value)


def _csv_cell(value: Any) -> str:
    """Text as it is, nothing as an empty cell, anything else (numbers, booleans, objects, lists) as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _chunks(lines: Iterable[str]) -> Iterator[bytes]:
    """`lines` encoded, in chunks of about CHUNK_BYTES."""
    parts: list[str] = []
    size = 0
    for text in lines:
        parts.append(text)
        size += len(text)
        if size >= CHUNK_BYTES:
            yield "".join(parts).encode()
            parts, size = [], 0
    if parts:
        yield "".join(parts).encode()


async def _in_a_thread(produce, *, release) -> AsyncIterator[bytes]:
    """What `produce()` yields, produced in a thread of its own (with its own database connection)."""
    handover: queue.Queue = queue.Queue(maxsize=QUEUED_CHUNKS)
    stop = threading.Event()

    def run() -> None:
        chunks = produce()
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        handover.put(chunk, timeout=1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():  # the client left: end the transaction and its cursor now
                    return
            handover.put(_DONE)
        except Exception as exc:
            logger.exception("An export failed while streaming; its response was cut short")
            handover.put(exc)
        finally:
            chunks.close()
            connection.close()  # this thread's connection: back to the pool
            release()

    threading.Thread(target=run, name="export", daemon=True).start()
    loop = asyncio.get_running_loop()
    try:
        while True:
            item = await loop.run_in_executor(None, handover.get)
            if item is _DONE:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
        while not handover.empty():  # let a producer blocked on a full queue see `stop`
            handover.get_nowait()
