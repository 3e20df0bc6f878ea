"""Live feeds of task outputs over WebSockets and over Server-Sent Events: one code path for both.

A feed (task_outputs/feeds.py) is one flow execution's outputs or an organization's live summaries.
`LiveFeedConsumer` carries either to one client: it authenticates (superai_flow.authentication.live_caller),
joins the feed's groups, forwards the messages the dispatcher sends to them, replays what a client missed
since a cursor and then goes on live (no gap: live messages that arrive meanwhile wait and follow the
replay), sends heartbeats, and ends when the caller's credentials are withdrawn (superai_flow.credential_watch).
The transports differ only in how a client asks and how a message is written:

- WebSockets (`/ws/flow-executions/{id}/`, `/ws/task-outputs/summaries/`): the client resumes with
  `{"type": "resume", "after": <cursor>}`; messages are JSON texts; `{"type": "heartbeat"}` every
  WS_HEARTBEAT_SECONDS. Close codes: 4400 malformed message, cursor or filter; 4401 not authenticated;
  4403 forbidden; 4404 no such flow execution for this caller.
- Server-Sent Events (`GET /api/v1/task-outputs/stream`, `EventStreamConsumer`): the client resumes with the
  `Last-Event-ID` header or `?after=`; each message is an event (`id: <cursor>`, `event: <type>`,
  `data: <JSON>`); `: heartbeat` every SSE_HEARTBEAT_SECONDS. A refusal is an HTTP error with the API's
  error envelope; revoked credentials end the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import uuid
import weakref
from typing import Any
from urllib.parse import parse_qs

from autobahn.exception import Disconnected
from channels.consumer import AsyncConsumer, get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from superai_flow import credential_watch
from superai_flow.authentication import CLOSE_FORBIDDEN, CLOSE_NOT_AUTHENTICATED, WebSocketCaller, live_caller
from superai_flow.errors import error_payload
from superai_flow.metrics import EVENT_STREAM_CLIENTS, WEBSOCKET_CLIENTS
from superai_flow.request_id import request_id_from
from task_outputs import live
from task_outputs.feeds import CLOSE_MALFORMED, CLOSE_NOT_FOUND, Feed, FeedRefused, FlowFeed, SummaryFeed
from task_outputs.models import TaskOutput

logger = logging.getLogger(__name__)

CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
REPLAY_BATCH = 500
REPLAYS_AT_ONCE = 2  # per process; the others wait their turn, in order
RESUMED = json.dumps({"type": "resumed"})
RESYNC_REQUIRED = json.dumps({"type": "resync_required"})
HEARTBEAT = json.dumps({"type": "heartbeat"})

_replay_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def replay_slot() -> asyncio.Semaphore:
    """The replays of this process (its event loop) take turns: REPLAYS_AT_ONCE run, the others wait in order.

    Every database_sync_to_async call of a process runs in one thread. Replays that all ran at once shared
    it batch by batch, so under load each took as long as all of them together, outlasted its client, and
    none reached `resumed`. Taking turns, a replay that starts finishes quickly, and one whose client
    leaves while it waits costs nothing (docs/operations.md, "Soak").
    """
    loop = asyncio.get_running_loop()
    slot = _replay_slots.get(loop)
    if slot is None:
        slot = _replay_slots[loop] = asyncio.Semaphore(REPLAYS_AT_ONCE)
    return slot


class LiveFeedConsumer(AsyncConsumer):
    """What both transports share. Subclasses open the connection, call `join(feed)` and `resume(horizon)`,
    and write (`send_text`, `send_heartbeat`, `close(code)`).

    A replay runs as a task of its own, so that the consumer goes on reading the client: when the client
    leaves, the replay is cancelled at once instead of running on, for nobody, until daphne kills the
    consumer. Live messages that arrive meanwhile wait and follow `resumed`, in the order they came.
    """

    clients: Any  # the metrics gauge of connected clients of this transport (superai_flow.metrics)
    feed: Feed
    caller: WebSocketCaller
    joined: tuple[str, ...] = ()
    heartbeat: asyncio.Task | None = None
    replaying: asyncio.Task | None = None
    held: list[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.released = asyncio.Event()  # clear while a replay runs
        self.released.set()

    @property
    def channel_receive(self):
        """Channels' reading of the consumer's channel, paused while a replay runs: the live messages that
        come meanwhile wait in the channel layer, one copy per process for all its consumers, not one each."""
        return self._receive_between_replays

    @channel_receive.setter
    def channel_receive(self, receive) -> None:
        self._layer_receive = receive

    async def _receive_between_replays(self) -> dict[str, Any]:
        await self.released.wait()
        return await self._layer_receive()

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its per-message trip to a thread to close stale database connections.

        Forwarding a message touches no database, and every query here goes through
        database_sync_to_async, which closes stale connections itself; the trip cost more than the rest
        of the fan-out to many watchers.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def join(self, feed: Feed) -> bool:
        """Open `feed` (FeedRefused if the caller may not) and join its groups; False if the channel layer failed."""
        groups = await feed.open()
        self.feed = feed
        self.caller = feed.caller
        try:
            for group in groups:
                await self.channel_layer.group_add(group, self.channel_name)
                self.joined += (group,)
        except Exception:
            logger.exception("Could not join %s; closing the live feed", groups)
            return False
        self.heartbeat = asyncio.create_task(self._beat())
        credential_watch.watch(self)
        self.clients.inc()  # connected clients (superai_flow.metrics): from here to disconnection
        self.counted = True
        return True

    def watched_organization_ids(self) -> frozenset[uuid.UUID]:
        return self.feed.watched_organization_ids()

    async def __call__(self, scope, receive, send) -> None:
        """Channels' consumer; then, however it ended, it leaves everything it joined.

        It ends when it reads the client's disconnection (at once: replays run beside the reading), when
        daphne cancels it (an instance still running application_close_timeout, 10 s, after its client left),
        or on an error. Whichever way, it would otherwise keep its groups, heartbeat, credential watch, replay
        and (channels-redis) channel, and every later message of its groups would queue for a reader that
        never comes (the soak's server memory growth, docs/operations.md). Shielded: daphne cancels an
        unfinished instance again every second.
        """
        try:
            await super().__call__(scope, receive, send)
        finally:
            await asyncio.shield(self._leave())

    async def _leave(self) -> None:
        if self.replaying is not None:
            self.replaying.cancel()
            self.replaying = None
        if getattr(self, "counted", False):
            self.clients.dec()
            self.counted = False
        credential_watch.unwatch(self)
        if self.heartbeat is not None:
            self.heartbeat.cancel()
        channel_name = getattr(self, "channel_name", None)  # none when the channel layer could not be reached
        for group in self.joined:
            try:
                await self.channel_layer.group_discard(group, channel_name)
            except Exception:
                logger.warning("Could not leave %s", group, exc_info=True)
        self.joined = ()
        clean_channel = getattr(self.channel_layer, "clean_channel", None)  # the in-memory layer expires its own
        if clean_channel is not None and channel_name is not None:
            try:
                await clean_channel(channel_name)
            except Exception:
                logger.warning("Could not unsubscribe %s", channel_name, exc_info=True)

    # --- Replay, then live ------------------------------------------------------------------------

    def resume(self, horizon: int) -> None:
        """Replay everything written since `horizon` (after any replay in progress), then go on live."""
        if self.replaying is None:
            self.held = []  # what the channel read while the replay began
            self.released.clear()
        self.replaying = asyncio.create_task(self._replay_then_release(horizon, self.replaying))

    async def _replay_then_release(self, horizon: int, previous: asyncio.Task | None) -> None:
        """The replay, after any earlier one of this connection; then the live messages held meanwhile."""
        if previous is not None:
            await asyncio.wait([previous])
        try:
            async with replay_slot():
                await self.replay(horizon)
        except Exception:
            logger.exception("Replay failed; closing the live feed")
            await self.close(code=CLOSE_INTERNAL_ERROR)
            return
        if self.replaying is not asyncio.current_task():
            return  # a later resume replays next and then releases
        while self.held:
            texts, self.held = self.held, []
            for text in texts:
                await self.send_text(text)
        self.replaying = None
        self.released.set()

    async def forward(self, text: str) -> None:
        """A live message: to the client, or held until the replay in progress has ended."""
        if self.replaying is not None:
            self.held.append(text)
        else:
            await self.send_text(text)

    async def replay(self, horizon: int) -> None:
        """Every row written since `horizon`, in transaction order, then `resumed` (or `resync_required`)."""
        if await database_sync_to_async(self._too_many)(horizon):
            await self.send_resync_required()
            return
        after: tuple[int, uuid.UUID] | None = None
        while True:
            texts, after = await database_sync_to_async(self._replay_batch)(horizon, after)
            for text in texts:
                await self.send_text(text)
            if after is None:
                break
        await self.send_text(RESUMED)

    def _too_many(self, horizon: int) -> bool:
        limit = settings.WS_MAX_REPLAY
        with self.feed.scoped():
            return live.written_since(self.feed.replay_rows(), horizon)[: limit + 1].count() > limit

    def _replay_batch(self, horizon: int, after: tuple[int, uuid.UUID] | None) -> tuple[list[str], tuple | None]:
        """The next REPLAY_BATCH texts after `after`, and where the next batch starts (None: this was the last).

        One query for the positions; the rows themselves only for texts not made already (`replay_texts`).
        """
        feed = self.feed
        rows = live.written_since(feed.replay_rows(), horizon)
        if after is not None:
            txid, pk = after
            rows = rows.filter(write_txid__gte=txid).exclude(write_txid=txid, id__lte=pk)
        cache = feed.replay_texts
        with feed.scoped():
            batch = list(rows.values_list("write_txid", "id", "revision")[:REPLAY_BATCH])
            texts = {pk: cache.get(pk, revision) for _, pk, revision in batch}
            missing = [pk for pk, text in texts.items() if text is None]
            if missing:
                for row in TaskOutput.objects.filter(pk__in=missing):  # a newer revision may come: newer data
                    texts[row.id] = text = feed.replay_text(row)
                    cache.put(row, text)
        last = batch[-1][:2] if len(batch) == REPLAY_BATCH else None
        return [text for text in texts.values() if text is not None], last

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds())
            await self.send_heartbeat()

    # --- Messages of the feed's groups (superai_flow.notifications) --------------------------------

    async def task_output_created(self, event: dict[str, Any]) -> None:
        if self.feed.wants(event):
            await self.forward(event["text"])

    task_output_updated = task_output_summary = flow_execution_updated = task_output_created

    # --- For transports ---------------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        """Write one message (a JSON text: type, cursor, data) to the client."""
        raise NotImplementedError

    async def send_resync_required(self) -> None:
        await self.send_text(RESYNC_REQUIRED)

    async def send_heartbeat(self) -> None:
        raise NotImplementedError

    def heartbeat_seconds(self) -> float:
        raise NotImplementedError

    async def close(self, code: int) -> None:
        """End the connection with a WebSocket close code (credential_watch calls it too)."""
        raise NotImplementedError


class WebSocketFeedConsumer(LiveFeedConsumer, AsyncWebsocketConsumer):
    """A feed over a WebSocket; subclasses make the feed from the handshake (`make_feed`)."""

    clients = WEBSOCKET_CLIENTS

    async def connect(self) -> None:
        await self.accept()
        caller = await live_caller(self.scope)
        if isinstance(caller, int):
            await self.close(code=caller)
            return
        try:
            if not await self.join(self.make_feed(caller)):
                await self.close(code=CLOSE_TRY_AGAIN_LATER)
        except FeedRefused as refusal:
            await self.close(code=refusal.code)

    def make_feed(self, caller: WebSocketCaller) -> Feed:
        raise NotImplementedError

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False) -> None:
        """Channels' send, except that a message to a socket the client is closing is dropped, as daphne drops
        those to a closed one: the consumer ends when its `websocket.disconnect` arrives, a moment later."""
        with contextlib.suppress(Disconnected):
            await super().send(text_data, bytes_data, close)

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        await AsyncWebsocketConsumer.close(self, code, reason)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """The client has gone: stop now (`__call__` stops a replay and leaves the groups).

        Channels' own handler would first wait for a trip to the thread that runs every
        database_sync_to_async call of the process, behind the replays' batches.
        """
        raise StopConsumer

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = json.loads(text_data) if text_data is not None else None
        except ValueError:
            message = None
        if not isinstance(message, dict) or message.get("type") != "resume":
            await self.close(code=CLOSE_MALFORMED)
            return
        try:
            horizon = live.decode_cursor(message.get("after"))
        except live.InvalidCursor:
            await self.close(code=CLOSE_MALFORMED)
            return
        self.resume(horizon)

    async def send_text(self, text: str) -> None:
        await self.send(text_data=text)

    async def send_heartbeat(self) -> None:
        await self.send(text_data=HEARTBEAT)

    def heartbeat_seconds(self) -> float:
        return settings.WS_HEARTBEAT_SECONDS


class FlowExecutionFeedConsumer(WebSocketFeedConsumer):
    """`/ws/flow-executions/{id}/`: every task output of one flow execution, and its status changes."""

    def make_feed(self, caller: WebSocketCaller) -> Feed:
        return FlowFeed(caller, self.scope["path"], self.scope["url_route"]["kwargs"]["pk"])


class SummaryFeedConsumer(WebSocketFeedConsumer):
    """`/ws/task-outputs/summaries/`: an organization's live summaries (feeds.SummaryFeed: the filters)."""

    def make_feed(self, caller: WebSocketCaller) -> Feed:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        return SummaryFeed(caller, self.scope["path"], query)


# --- Server-Sent Events ---------------------------------------------------------------------------

_HTTP_STATUS = {
    CLOSE_MALFORMED: (400, "bad_request"),
    CLOSE_NOT_AUTHENTICATED: (401, "not_authenticated"),
    CLOSE_FORBIDDEN: (403, "permission_denied"),
    CLOSE_NOT_FOUND: (404, "not_found"),
    CLOSE_TRY_AGAIN_LATER: (503, "service_unavailable"),
}
_REFUSALS = {
    CLOSE_NOT_AUTHENTICATED: "Send an API key as 'Authorization: Bearer <key>', or sign in: the credentials are "
    "missing, unknown or revoked.",
    CLOSE_FORBIDDEN: "Not allowed: the API key may not read, or the session's Origin is not this site's.",
    CLOSE_TRY_AGAIN_LATER: "Live updates are unavailable right now (the channel layer); retry later.",
}
_ENDINGS = {
    CLOSE_NOT_AUTHENTICATED: "the credentials were revoked",
    CLOSE_FORBIDDEN: "the caller may no longer see this organization",
    CLOSE_INTERNAL_ERROR: "the server failed; reconnect to resume",
}
RETRY_MILLISECONDS = 2000  # how long EventSource waits before it reconnects (its own default is ~3 s)


@functools.lru_cache(maxsize=16)
def sse_event(text: str) -> bytes:
    """A message's JSON text as one Server-Sent Event: `id: <cursor>` (when it has one), `event: <type>`,
    `data: <its data as JSON>`. Cached: every client of a process receives each message at about the same time."""
    message = json.loads(text)
    cursor = message.get("cursor")
    event = f"event: {message['type']}\ndata: {json.dumps(message.get('data', {}))}\n\n"
    return (f"id: {cursor}\n{event}" if cursor else event).encode()


class EventStreamConsumer(LiveFeedConsumer):
    """`GET /api/v1/task-outputs/stream`: the summary feed, or with `flow_execution_id=` the flow feed, as a
    `text/event-stream` that never ends by itself.

    Holds no database connection while idle and no thread: like a WebSocket, it is a coroutine that waits
    on its channel. Before any event, a new stream sends `id: <cursor for now>`, which sets EventSource's
    Last-Event-ID without an event: a client that reconnects before its first message still misses nothing.
    """

    clients = EVENT_STREAM_CLIENTS
    started = False  # the 200 and its headers have gone out
    ended = False

    async def http_request(self, message: dict[str, Any]) -> None:
        if message.get("more_body"):
            return  # a GET has no body to wait for; anything else is refused once it is read
        self.request_id = request_id_from(self.scope)
        if self.scope["method"] != "GET":
            await self.answer(405, "method_not_allowed", f"Method {self.scope['method']} is not allowed: use GET.",
                              [(b"allow", b"GET")])  # fmt: skip
            return
        try:
            caller = await live_caller(self.scope, origin_required=False)
            if isinstance(caller, int):
                raise FeedRefused(caller, _REFUSALS[caller])
            query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            horizon = self._resume_from(query)
            if not await self.join(self._feed(caller, query)):
                raise FeedRefused(CLOSE_TRY_AGAIN_LATER, _REFUSALS[CLOSE_TRY_AGAIN_LATER])
        except FeedRefused as refusal:
            await self.answer(*_HTTP_STATUS[refusal.code], refusal.message)
            return
        except Exception:  # the database is down, say
            logger.exception("Could not open an event stream")
            await self.answer(503, "service_unavailable", "The live feed could not be opened; retry later.")
            return
        if self.ended:  # the credential check refused it meanwhile
            return
        await self.send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache, no-store"),
            (b"x-accel-buffering", b"no"),  # nginx: pass events on at once
            (b"x-request-id", self.request_id.encode()),
        ]})  # fmt: skip
        self.started = True
        if horizon is None:
            cursor = live.encode_cursor(await database_sync_to_async(self._current_horizon)())
            await self.send_body(f"retry: {RETRY_MILLISECONDS}\nid: {cursor}\n\n".encode())
        else:
            await self.send_body(f"retry: {RETRY_MILLISECONDS}\n\n".encode())
            self.resume(horizon)

    def _resume_from(self, query: dict[str, list[str]]) -> int | None:
        """The horizon to replay from: `Last-Event-ID` (what EventSource sends when it reconnects), else `after`."""
        token = dict(self.scope.get("headers", [])).get(b"last-event-id") or None  # EventSource never sends ""
        after = query.pop("after", [])
        if token is None and not after:
            return None
        if token is None and len(after) > 1:
            raise FeedRefused(CLOSE_MALFORMED, "Give at most one 'after' cursor.")
        try:
            return live.decode_cursor(token.decode("latin-1") if token is not None else after[0])
        except live.InvalidCursor:
            source = "Last-Event-ID" if token is not None else "after"
            raise FeedRefused(CLOSE_MALFORMED, f"{source} is not a cursor of this service.") from None

    def _feed(self, caller: WebSocketCaller, query: dict[str, list[str]]) -> Feed:
        flows = query.pop("flow_execution_id", None)
        if flows is None:
            return SummaryFeed(caller, self.scope["path"], query)
        if len(flows) > 1 or query:
            raise FeedRefused(CLOSE_MALFORMED, "With flow_execution_id, give no other filter (and only one id).")
        return FlowFeed(caller, self.scope["path"], flows[0])

    def _current_horizon(self) -> int:
        with self.feed.scoped():
            return live.current_horizon()

    async def answer(self, status: int, code: str, message: str, headers: list | None = None) -> None:
        """A whole error response with the API's envelope (before the stream has started)."""
        body = json.dumps(error_payload(code, message, request_id=self.request_id)).encode()
        await self.send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"x-request-id", self.request_id.encode()),
            *(headers or []),
        ]})  # fmt: skip
        await self.send({"type": "http.response.body", "body": body})
        self.started = self.ended = True

    async def send_body(self, body: bytes) -> None:
        if not self.ended:
            await self.send({"type": "http.response.body", "body": body, "more_body": True})

    async def send_text(self, text: str) -> None:
        await self.send_body(sse_event(text))

    async def send_resync_required(self) -> None:
        """`resync_required` with a cursor for now: the client reloads over REST, and a reconnection after that
        resumes from here instead of asking to resync again."""
        cursor = live.encode_cursor(await database_sync_to_async(self._current_horizon)())
        await self.send_body(f"id: {cursor}\nevent: resync_required\ndata: {{}}\n\n".encode())

    async def send_heartbeat(self) -> None:
        if self.started:
            await self.send_body(b": heartbeat\n\n")

    def heartbeat_seconds(self) -> float:
        return settings.SSE_HEARTBEAT_SECONDS

    async def close(self, code: int) -> None:
        """End the stream, saying why in a comment; daphne then reports the disconnection and the consumer stops."""
        if not self.started:
            status = _HTTP_STATUS.get(code, (503, "service_unavailable"))
            await self.answer(*status, _REFUSALS.get(code, "The live feed ended."))
        elif not self.ended:
            self.ended = True
            reason = _ENDINGS.get(code)
            body = f": closed: {reason}\n\n".encode() if reason else b""
            await self.send({"type": "http.response.body", "body": body, "more_body": False})

    async def http_disconnect(self, message: dict[str, Any]) -> None:
        raise StopConsumer
