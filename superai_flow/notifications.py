"""Channels group sends after commit, from one background dispatcher per process.

Writers call `send_on_commit(messages)` inside their transaction; when (and only if) it commits, the
messages go to a bounded queue and the request goes on without waiting. A single worker coroutine
sends them to the channel layer, one at a time and in order, each attempt bounded by a timeout and
retried with backoff until the message is too old; then it is dropped with a log line and counted.

The worker runs on the server's event loop once the ASGI application has seen its first connection
(`AttachDispatcher`), so an in-memory channel layer reaches the consumers of this process; elsewhere
(management commands, tests driving Django directly) it runs on a private background loop. At exit,
whatever is still queued is sent from a fresh loop within NOTIFY_DRAIN_SECONDS.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
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

logger = logging.getLogger(__name__)


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
    ):
        self.max_queue = max_queue
        self.send_timeout = send_timeout
        self.max_age = max_age
        self.drain_seconds = drain_seconds
        self.backoff = backoff
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Item] | None = None
        self._worker: asyncio.Future | None = None
        self._thread: threading.Thread | None = None
        self._current: _Item | None = None
        self._last_log: dict[str, float] = {}

    # --- Producer side (any thread) -------------------------------------------------------------

    def submit(self, messages: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Queue messages for sending; never blocks and never raises."""
        items = [_Item(group, message, time.monotonic() + self.max_age) for group, message in messages]
        try:
            loop = self._running_loop()
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
        queued = self._queue.qsize() if self._queue is not None else 0
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
                self._current = await self._queue.get()
                await self._deliver(layer, self._current)
                self._current = None
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("The notification dispatcher stopped; notifications will not be sent")

    async def _deliver(self, layer, item: _Item) -> None:
        while True:
            item.attempts += 1
            try:
                await asyncio.wait_for(layer.group_send(item.group, item.message), self.send_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = min(self.backoff[1], self.backoff[0] * 2 ** (item.attempts - 1))
                if time.monotonic() + delay > item.deadline:
                    self._drop(item, f"gave up after {item.attempts} attempts, last error {exc!r}")
                    return
                self.counters["retried"] += 1
                self._log("retry", logging.WARNING, "Notification to %s failed (%r); retrying", item.group, exc)
                await asyncio.sleep(delay)
            else:
                self.counters["sent"] += 1
                return

    def _drop(self, item: _Item, reason: str) -> None:
        self.counters["dropped"] += 1
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

        The message that was being sent is sent again: delivery is at least once.
        """
        if self._queue is None:
            return
        self.close()
        pending = [self._current] if self._current is not None else []
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        self._current = None
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
        for item in pending:
            await self._deliver(layer, item)


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
                )
                atexit.register(_dispatcher.drain)
    return _dispatcher


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
