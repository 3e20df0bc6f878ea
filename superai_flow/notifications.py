"""Channels group sends after commit, from one background dispatcher per process.

Writers call `send_on_commit(messages)` inside their transaction; when (and only if) it commits, the
messages go to a bounded queue and the request goes on without waiting. A single worker coroutine
sends them to the channel layer in order: it takes everything queued, up to BATCH_SIZE messages, and
sends the batch in one call of the layer's `group_send_many` (superai_flow/channel_layer.py: one Redis
round trip), or, for a layer without it (the in-memory one), one message at a time with `group_send`.
Under steady traffic it sends a batch at most every NOTIFY_BATCH_INTERVAL_MS, so that a round trip
carries several creates' messages; after a quiet spell the first message goes at once.
Each attempt is bounded by a timeout and retried with backoff, the whole remaining batch at once;
a message too old to retry is dropped with a log line and counted.

The worker runs on the server's event loop once the ASGI application has seen its first connection
(`AttachDispatcher`), so an in-memory channel layer reaches the consumers of this process; elsewhere
(management commands, tests driving Django directly) it runs on a private background loop. At exit,
whatever is still queued is sent from a fresh loop within NOTIFY_DRAIN_SECONDS.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import transaction

from superai_flow import metrics

logger = logging.getLogger(__name__)

# The most messages the worker sends in one go: one Redis round trip, so a few hundred kilobytes at most.
BATCH_SIZE = 200


@dataclass
class _Item:
    group: str
    message: dict[str, Any]
    deadline: float
    attempts: int = field(default=0)


class Dispatcher:
    """Sends (group, message) pairs to the channel layer in the background; see the module docstring."""

    def __init__(
        self,
        *,
        max_queue: int,
        send_timeout: float,
        max_age: float,
        drain_seconds: float,
        backoff: tuple[float, float] = (0.05, 2.0),
        batch_size: int = BATCH_SIZE,
        interval: float = 0.0,
    ):
        self.max_queue = max_queue
        self.send_timeout = send_timeout
        self.max_age = max_age
        self.drain_seconds = drain_seconds
        self.backoff = backoff
        self.batch_size = batch_size
        self.interval = interval
        self._last_batch = -interval
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Item] | None = None
        self._worker: asyncio.Future | None = None
        self._thread: threading.Thread | None = None
        self._current: list[_Item] = []  # the batch being sent: what of it is neither sent nor dropped yet
        self._last_log: dict[str, float] = {}

    # --- Producer side (any thread) -------------------------------------------------------------

    def submit(self, messages: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Queue messages for sending; never blocks and never raises.

        Inside `held_for_the_loop` they wait for the end of the block instead.
        """
        items = [_Item(group, message, time.monotonic() + self.max_age) for group, message in messages]
        held = _held.get()
        if held is not None:
            held.extend(items)
            return
        self._hand_over(items)

    def _hand_over(self, items: list[_Item]) -> None:
        try:
            loop = self._running_loop()
            if loop is _current_loop():
                self._enqueue(items)
            else:
                loop.call_soon_threadsafe(self._enqueue, items)
        except Exception as exc:  # a closed loop at shutdown, say: count and log, never fail the writer
            for item in items:
                self._drop(item, f"dispatcher unavailable ({exc!r})")

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run on `loop` (the ASGI server's), unless already running somewhere."""
        if self._loop is None:
            with self._lock:
                if self._loop is None:
                    self._start(loop)

    def close(self) -> None:
        """Stop the worker (and the private loop, if it runs on one); what is still queued stays for `drain`."""
        if self._worker is not None:
            with contextlib.suppress(RuntimeError):  # the server's loop is already closed
                self._worker.cancel()
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._thread = None

    def snapshot(self) -> dict[str, int]:
        """Counters for /readyz; `queued` is what is neither sent nor dropped yet, the batch being sent included."""
        queued = (self._queue.qsize() if self._queue is not None else 0) + len(self._current)
        return {"queued": queued, **{k: self.counters[k] for k in ("sent", "retried", "dropped")}}

    # --- Worker side (the dispatcher's loop) ----------------------------------------------------

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            with self._lock:
                if self._loop is None:
                    self._start_private()
        if self._loop.is_closed():
            raise RuntimeError("event loop closed")
        return self._loop

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._loop = loop
        self._worker = asyncio.run_coroutine_threadsafe(self._work(), loop)

    def _start_private(self) -> None:
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=_run_until_stopped, args=(loop,), name="notifications", daemon=True)
        self._thread.start()
        self._start(loop)

    def _enqueue(self, items: list[_Item]) -> None:
        for item in items:
            try:
                self._queue.put_nowait(item)
            except asyncio.QueueFull:
                self._drop(item, f"queue full ({self.max_queue} waiting)")

    async def _work(self) -> None:
        try:
            layer = get_channel_layer()
            while True:
                batch = [await self._queue.get()]
                wait = self._last_batch + self.interval - time.monotonic()
                if wait > 0:  # a batch went out moments ago: let more arrive rather than send one by one
                    await asyncio.sleep(wait)
                while len(batch) < self.batch_size and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                self._current = batch
                self._last_batch = time.monotonic()
                await self._deliver(layer, batch)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("The notification dispatcher stopped; notifications will not be sent")

    async def _deliver(self, layer, pending: list[_Item]) -> None:
        """Send `pending` in order, removing each item from it once it is sent or dropped."""
        if callable(getattr(type(layer), "group_send_many", None)):
            await self._send_retrying(layer, pending, batched=True)
            return
        while pending:  # one by one; the item being sent stays first in `pending` until it is done with
            head = pending[:1]
            await self._send_retrying(layer, head, batched=False)
            del pending[0]

    async def _send_retrying(self, layer, items: list[_Item], *, batched: bool) -> None:
        """Send `items` in one attempt after another until sent, dropping those that grow too old in between.

        `items` is emptied when they are sent; it always holds those neither sent nor dropped yet. No attempt
        starts after an item's deadline (an item may have waited that long behind others being retried), so
        a message arrives at most NOTIFY_MAX_AGE_SECONDS + NOTIFY_SEND_TIMEOUT_SECONDS after it was queued:
        what the cursors' grace allows for (LIVE_CURSOR_GRACE_SECONDS).
        """
        while items:
            for item in self._expired(items, time.monotonic()):
                self._drop(item, f"too old to send after {item.attempts} attempts")
            if not items:
                return
            for item in items:
                item.attempts += 1
            attempts = max(item.attempts for item in items)
            try:
                if batched:
                    send = layer.group_send_many([(item.group, item.message) for item in items])
                else:
                    send = layer.group_send(items[0].group, items[0].message)
                async with asyncio.timeout(self.send_timeout):  # no task per send, unlike wait_for
                    await send
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = min(self.backoff[1], self.backoff[0] * 2 ** (attempts - 1))
                for item in self._expired(items, time.monotonic() + delay):
                    self._drop(item, f"gave up after {item.attempts} attempts, last error {exc!r}")
                if not items:
                    return
                self.counters["retried"] += len(items)
                metrics.NOTIFICATIONS_RETRIED.inc(len(items))
                self._log(
                    "retry",
                    logging.WARNING,
                    "Sending %d notification(s), the first to %s, failed (%r); retrying",
                    len(items),
                    items[0].group,
                    exc,
                )
                await asyncio.sleep(delay)
            else:
                self.counters["sent"] += len(items)
                metrics.NOTIFICATIONS_SENT.inc(len(items))
                items.clear()

    @staticmethod
    def _expired(items: list[_Item], moment: float) -> list[_Item]:
        """Take out of `items` (in place) those whose deadline is before `moment`, and return them."""
        expired = [item for item in items if moment > item.deadline]
        items[:] = [item for item in items if moment <= item.deadline]
        return expired

    def _drop(self, item: _Item, reason: str) -> None:
        self.counters["dropped"] += 1
        metrics.NOTIFICATIONS_DROPPED.inc()
        self._log(
            "drop",
            logging.ERROR,
            "Dropped notification %s to %s: %s (%d dropped so far)",
            item.message.get("type"),
            item.group,
            reason,
            self.counters["dropped"],
        )

    def _log(self, kind: str, level: int, message: str, *args) -> None:
        """At most one line a second of each kind, so that an outage does not flood the log."""
        now = time.monotonic()
        if now - self._last_log.get(kind, 0.0) >= 1.0:
            self._last_log[kind] = now
            logger.log(level, message, *args)

    # --- Shutdown -------------------------------------------------------------------------------

    def drain(self) -> None:
        """Stop the worker, then send what is still queued from a fresh event loop within `drain_seconds`.

        What was being sent is sent again: delivery is at least once.
        """
        if self._queue is None:
            return
        self.close()
        pending = list(self._current)
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        self._current = []
        if not pending:
            return
        layer = get_channel_layer()
        if isinstance(layer, InMemoryChannelLayer):
            logger.info("Not sending %d notifications at exit: the in-memory layer has no listeners left", len(pending))
            return
        logger.info("Sending %d queued notifications before exit", len(pending))
        deadline = time.monotonic() + self.drain_seconds
        for item in pending:
            item.deadline = deadline
        asyncio.run(self._drain(layer, pending))

    async def _drain(self, layer, pending: list[_Item]) -> None:
        for start in range(0, len(pending), self.batch_size):
            await self._deliver(layer, pending[start : start + self.batch_size])


def flow_group(flow_execution_id) -> str:
    """Watchers of one flow execution."""
    return f"flow_execution.{flow_execution_id}"


def summary_group(organization_id) -> str:
    """Watchers of an organization's live summary feed."""
    return f"summaries.{organization_id}"


def _run_until_stopped(loop: asyncio.AbstractEventLoop) -> None:
    """The private loop's thread: run until stopped, then cancel what is left and close the loop."""
    asyncio.set_event_loop(loop)
    loop.run_forever()
    leftovers = asyncio.all_tasks(loop)
    for task in leftovers:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
    loop.close()


_dispatcher: Dispatcher | None = None
_dispatcher_lock = threading.Lock()


def get_dispatcher() -> Dispatcher:
    """This process's dispatcher, configured from settings."""
    global _dispatcher
    if _dispatcher is None:
        with _dispatcher_lock:
            if _dispatcher is None:
                _dispatcher = Dispatcher(
                    max_queue=settings.NOTIFY_MAX_QUEUE,
                    send_timeout=settings.NOTIFY_SEND_TIMEOUT_SECONDS,
                    max_age=settings.NOTIFY_MAX_AGE_SECONDS,
                    drain_seconds=settings.NOTIFY_DRAIN_SECONDS,
                    interval=settings.NOTIFY_BATCH_INTERVAL_MS / 1000,
                )
                atexit.register(_dispatcher.drain)
    return _dispatcher


_held: contextvars.ContextVar[list[_Item] | None] = contextvars.ContextVar("held_notifications", default=None)


def _current_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@contextlib.contextmanager
def held_for_the_loop():
    """Hold what is submitted in this context (and in copies of it made inside the block, such as a worker
    thread's) until the block ends, then queue it from here.

    The HTTP handler (superai_flow/handlers.py) runs a request's sync work in a worker thread inside this
    block on the event loop: the messages a request commits then join the dispatcher's queue on the loop
    itself, as the response comes back, instead of waking the loop once more from the worker thread (a
    create's two live messages cost one such wake-up each). The messages still go out only after commit.
    """
    items: list[_Item] = []
    token = _held.set(items)
    try:
        yield
    finally:
        _held.reset(token)
        if items:
            get_dispatcher()._hand_over(items)


def send_on_commit(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Hand `messages` to the dispatcher when the current transaction commits; never if it rolls back."""
    transaction.on_commit(partial(_submit, messages), robust=True)


def _submit(messages: list[tuple[str, dict[str, Any]]]) -> None:
    get_dispatcher().submit(messages)


class AttachDispatcher:
    """ASGI middleware: runs the dispatcher on the server's event loop (see the module docstring)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        get_dispatcher().attach(asyncio.get_running_loop())
        return await self.app(scope, receive, send)
