"""Live updates of task outputs: cursors, the messages sent after each write, and replays.

A cursor is a *horizon*: a transaction id such that replaying every row last written by a
transaction with an id at or above it (`write_txid >= horizon`) gives the client everything it may
have missed. Two things can make a row arrive "late", and the horizon allows for both:

- Transactions commit out of order (row 7 commits after a reader has seen row 8). Each write records
  the oldest transaction still open at that moment (`write_horizon`, the snapshot's xmin); every
  transaction that had not committed yet has an id at or above it.
- Messages are delivered out of commit order: each is sent after its own commit, from the process
  that wrote it, and may be retried for up to NOTIFY_MAX_AGE_SECONDS. So the cursor a message carries
  (`cursor_horizon`) reaches back further: to the `write_horizon` of the first write of the last
  LIVE_CURSOR_GRACE_SECONDS. A message later than that has been dropped, logged and counted.

Replays are ordered by transaction id and repeat rows the client may already have: clients
deduplicate by `id` (at-least-once). Cursors from REST listings (`X-Live-Cursor`) need no grace: the
listing itself shows everything committed before its query.

On PostgreSQL the ids are real transaction ids (`pg_current_xact_id()`, 64-bit, never wrapping) and
horizons come from `pg_current_snapshot()`. On SQLite, where writers take turns (IMMEDIATE
transactions), each write takes the next number and is its own horizon.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from superai_flow.notifications import flow_group, send_on_commit, summary_group
from task_outputs.api.serializers import task_output_data
from task_outputs.models import TaskOutput

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,40}")
_CURSOR = re.compile(r"live:(\d{1,19})")


class InvalidCursor(ValueError):
    pass


def encode_cursor(horizon: int) -> str:
    return base64.urlsafe_b64encode(f"live:{horizon}".encode()).decode().rstrip("=")


def decode_cursor(token: Any) -> int:
    """The horizon in `token`; InvalidCursor when it is not a cursor this service made."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise InvalidCursor("not a cursor")
    try:
        match = _CURSOR.fullmatch(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        match = None
    if match is None or int(match.group(1)) > 2**63 - 1:
        raise InvalidCursor("not a cursor")
    return int(match.group(1))


# A write's position in the current transaction as three SQL expressions (write_txid, write_horizon,
# cursor_horizon) with one parameter, the start of the grace period: what an INSERT or UPDATE can
# compute in its own statement. The first write of the grace period is looked up in every
# organization (on PostgreSQL through a function that sees past row-level security; it returns a
# number, no tenant data); LEAST ignores its NULL when there was none.
_NEXT_SQLITE_TXID = "(SELECT COALESCE(MAX(write_txid), 0) + 1 FROM task_outputs_taskoutput)"
WRITE_POSITION_SQL = {
    "postgresql": (
        "pg_current_xact_id()::text::bigint, pg_snapshot_xmin(pg_current_snapshot())::text::bigint, "
        "LEAST(pg_snapshot_xmin(pg_current_snapshot())::text::bigint, superai_first_write_since(%s))"
    ),
    "sqlite": (
        f"{_NEXT_SQLITE_TXID}, {_NEXT_SQLITE_TXID}, MIN({_NEXT_SQLITE_TXID}, COALESCE((SELECT write_horizon "
        f"FROM task_outputs_taskoutput WHERE updated_at >= %s ORDER BY updated_at LIMIT 1), {_NEXT_SQLITE_TXID}))"
    ),
}


def grace_start() -> Any:
    """WRITE_POSITION_SQL's parameter: the start of the grace period, as the database takes it."""
    moment = timezone.now() - timedelta(seconds=settings.LIVE_CURSOR_GRACE_SECONDS)
    return connection.ops.adapt_datetimefield_value(moment)


def write_position() -> dict[str, int]:
    """`write_txid`, `write_horizon` and `cursor_horizon` for a write in the current transaction (one query)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {WRITE_POSITION_SQL[connection.vendor]}", [grace_start()])
        txid, horizon, cursor_horizon = cursor.fetchone()
    return {"write_txid": txid, "write_horizon": horizon, "cursor_horizon": cursor_horizon}


def current_horizon() -> int:
    """A horizon for "now": resuming from it misses nothing committed later."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        else:
            cursor.execute("SELECT COALESCE(MAX(write_txid), 0) + 1 FROM task_outputs_taskoutput")
        return cursor.fetchone()[0]


def written_since(queryset: QuerySet[TaskOutput], horizon: int) -> QuerySet[TaskOutput]:
    """Rows of `queryset` last written at or after `horizon`, in transaction order."""
    return queryset.filter(write_txid__gte=horizon).order_by("write_txid", "id")


SUMMARY_FIELDS = ("id", "flow_execution_id", "task_name", "status", "summary", "tags", "created_at")


def flow_message(output: TaskOutput, event_type: str, data: dict[str, Any] | None = None) -> str:
    """The JSON text of a flow-feed message (`task_output.created` or `task_output.updated`)."""
    data = data if data is not None else task_output_data(output)
    return json.dumps({"type": event_type, "cursor": encode_cursor(output.cursor_horizon), "data": data})


def summary_message(output: TaskOutput, data: dict[str, Any] | None = None) -> str:
    """The JSON text of a summary-feed message: the compact record."""
    data = data if data is not None else task_output_data(output)
    compact = {key: data[key] for key in SUMMARY_FIELDS}
    return json.dumps({"type": "task_output.summary", "cursor": encode_cursor(output.cursor_horizon), "data": compact})


def replay_event_type(output: TaskOutput) -> str:
    return "task_output.created" if output.revision == 1 else "task_output.updated"


class ReplayTexts:
    """The replay texts of the rows a process replayed last, so that clients resuming over the same recent
    rows do not each load and encode them again.

    Every resume repeats at least LIVE_CURSOR_GRACE_SECONDS of writes, so under load each recent row is
    replayed by every client that resumes within that time: the soak (docs/operations.md) replayed each row
    about a hundred times per process. A text is kept with the row's `revision` (a later write of the row
    misses), up to `max_bytes` of text in all (texts are ASCII JSON: a character is a byte), so that its
    memory does not depend on how large outputs are; the first kept is dropped first, and a row written no
    later than the last one dropped is not kept, so that a replay from far back cannot push out the recent
    rows every other replay needs. Shared by the threads that run database_sync_to_async calls.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.texts: dict[uuid.UUID, tuple[int, int, str]] = {}  # id -> (revision, write_txid, text)
        self.bytes = 0
        self.floor = 0  # the write_txid of the last text dropped
        self.lock = threading.Lock()

    def get(self, pk: uuid.UUID, revision: int) -> str | None:
        entry = self.texts.get(pk)
        return entry[2] if entry is not None and entry[0] == revision else None

    def put(self, output: TaskOutput, text: str) -> None:
        with self.lock:
            if output.write_txid <= self.floor:
                return
            self._drop(self.texts.pop(output.id, None))
            self.texts[output.id] = (output.revision, output.write_txid, text)
            self.bytes += len(text)
            while self.bytes > self.max_bytes:
                entry = self.texts.pop(next(iter(self.texts)))
                self._drop(entry)
                self.floor = max(self.floor, entry[1])

    def _drop(self, entry: tuple[int, int, str] | None) -> None:
        if entry is not None:
            self.bytes -= len(entry[2])

    def clear(self) -> None:
        with self.lock:
            self.texts.clear()
            self.bytes = 0
            self.floor = 0


def notify_saved(output: TaskOutput, *, created: bool) -> None:
    """After commit: the full record to the flow's watchers, the compact one to the organization's feed.

    Messages travel as ready JSON text, encoded once, with the fields summary-feed filters need beside it.
    """
    event_type = "task_output.created" if created else "task_output.updated"
    data = task_output_data(output)
    filters = {"task_name": output.task_name, "status": output.status, "tags": list(output.tags)}
    send_on_commit(
        [
            (
                flow_group(output.flow_execution_id),
                {"type": event_type, "text": flow_message(output, event_type, data)},
            ),
            (
                summary_group(output.organization_id),
                {"type": "task_output.summary", "text": summary_message(output, data), **filters},
            ),
        ]
    )
