"""WebSocket feeds of task outputs: one flow execution's outputs, or an organization's live summaries.

Both authenticate on the handshake (superai_flow.authentication.websocket_caller), forward the
messages the dispatcher sends to their groups, replay what a client missed after `{"type": "resume",
"after": <cursor>}`, and send `{"type": "heartbeat"}` every WS_HEARTBEAT_SECONDS so that idle
proxies keep the connection open. Close codes: 4400 malformed message, cursor or filter; 4401 not
authenticated; 4403 forbidden; 4404 no such flow execution for this caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
import weakref
from typing import Any
from urllib.parse import parse_qs

from autobahn.exception import Disconnected
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db.models import QuerySet

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution
from superai_flow import credential_watch
from superai_flow.authentication import CLOSE_FORBIDDEN, WebSocketCaller, websocket_caller
from superai_flow.json_queries import JSONArrayContainsAll
from superai_flow.metrics import WEBSOCKET_CLIENTS
from superai_flow.notifications import flow_group, summary_group
from superai_flow.organizations.models import Organization
from superai_flow.tenancy import tenant_scope
from task_outputs import live
from task_outputs.models import TaskOutput

logger = logging.getLogger(__name__)

CLOSE_MALFORMED = 4400
CLOSE_NOT_FOUND = 4404
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


class LiveFeedConsumer(AsyncWebsocketConsumer):
    """What both feeds share; subclasses choose the groups (`open_feed`) and the rows a resume replays.

    A replay runs as a task of its own, so that the consumer goes on reading the client: when the client
    leaves, the replay is cancelled at once instead of running on, for nobody, until daphne kills the
    consumer. Live messages that arrive meanwhile wait and follow `resumed`, in the order they came.
    """

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

    async def connect(self) -> None:
        await self.accept()
        caller = await websocket_caller(self.scope)
        if isinstance(caller, int):
            await self.close(code=caller)
            return
        self.caller = caller
        outcome = await self.open_feed(caller)
        if isinstance(outcome, int):
            await self.close(code=outcome)
            return
        try:
            for group in outcome:
                await self.channel_layer.group_add(group, self.channel_name)
                self.joined += (group,)
        except Exception:
            logger.exception("Could not join %s; closing the WebSocket", outcome)
            await self.close(code=CLOSE_TRY_AGAIN_LATER)
            return
        self.heartbeat = asyncio.create_task(self._beat())
        credential_watch.watch(self)
        WEBSOCKET_CLIENTS.inc()  # connected clients (superai_flow.metrics): from here to disconnect
        self.counted = True

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False) -> None:
        """Channels' send, except that a message to a socket the client is closing is dropped, as daphne drops
        those to a closed one: the consumer ends when its `websocket.disconnect` arrives, a moment later."""
        with contextlib.suppress(Disconnected):
            await super().send(text_data, bytes_data, close)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """The client has gone: stop now (`__call__` stops a replay and leaves the groups).

        Channels' own handler would first wait for a trip to the thread that runs every
        database_sync_to_async call of the process, behind the replays' batches.
        """
        raise StopConsumer

    async def __call__(self, scope, receive, send) -> None:
        """Channels' consumer; then, however it ended, it leaves everything it joined.

        It ends when it reads the client's `websocket.disconnect` (at once: replays run beside the reading),
        when daphne cancels it (an instance still running application_close_timeout, 10 s, after its client
        left), or on an error. Whichever way, it would otherwise keep its groups, heartbeat, credential watch,
        replay and (channels-redis) channel, and every later message of its groups would queue for a reader
        that never comes (the soak's server memory growth, docs/operations.md). Shielded: daphne cancels an
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
            WEBSOCKET_CLIENTS.dec()
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
            logger.exception("Replay failed; closing the WebSocket")
            await self.close(code=CLOSE_INTERNAL_ERROR)
            return
        if self.replaying is not asyncio.current_task():
            return  # a later resume replays next and then releases
        while self.held:
            texts, self.held = self.held, []
            for text in texts:
                await self.send(text_data=text)
        self.replaying = None
        self.released.set()

    async def forward(self, text: str) -> None:
        """A live message: to the client, or held until the replay in progress has ended."""
        if self.replaying is not None:
            self.held.append(text)
        else:
            await self.send(text_data=text)

    async def replay(self, horizon: int) -> None:
        """Every row written since `horizon`, in transaction order, then `resumed` (or `resync_required`)."""
        if await database_sync_to_async(self._too_many)(horizon):
            await self.send(text_data=RESYNC_REQUIRED)
            return
        after: tuple[int, uuid.UUID] | None = None
        while True:
            texts, after = await database_sync_to_async(self._replay_batch)(horizon, after)
            for text in texts:
                await self.send(text_data=text)
            if after is None:
                break
        await self.send(text_data=RESUMED)

    def scoped(self):
        """A transaction that sees what the caller may see (row-level security, docs/security.md)."""
        return tenant_scope(self.caller.organization_ids, bypass_reason=f"superuser WebSocket {self.scope['path']}")

    def _too_many(self, horizon: int) -> bool:
        limit = settings.WS_MAX_REPLAY
        with self.scoped():
            return live.written_since(self.replay_rows(), horizon)[: limit + 1].count() > limit

    def _replay_batch(self, horizon: int, after: tuple[int, uuid.UUID] | None) -> tuple[list[str], tuple | None]:
        """The next REPLAY_BATCH texts after `after`, and where the next batch starts (None: this was the last).

        One query for the positions; the rows themselves only for texts not made already (`replay_texts`).
        """
        rows = live.written_since(self.replay_rows(), horizon)
        if after is not None:
            txid, pk = after
            rows = rows.filter(write_txid__gte=txid).exclude(write_txid=txid, id__lte=pk)
        cache = self.replay_texts
        with self.scoped():
            batch = list(rows.values_list("write_txid", "id", "revision")[:REPLAY_BATCH])
            texts = {pk: cache.get(pk, revision) for _, pk, revision in batch}
            missing = [pk for pk, text in texts.items() if text is None]
            if missing:
                for row in TaskOutput.objects.filter(pk__in=missing):  # a newer revision may come: newer data
                    texts[row.id] = text = self.replay_text(row)
                    cache.put(row, text)
        last = batch[-1][:2] if len(batch) == REPLAY_BATCH else None
        return [text for text in texts.values() if text is not None], last

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(settings.WS_HEARTBEAT_SECONDS)
            await self.send(text_data=HEARTBEAT)

    # --- For subclasses ---------------------------------------------------------------------------

    async def open_feed(self, caller: WebSocketCaller) -> tuple[str, ...] | int:
        raise NotImplementedError

    def watched_organization_ids(self) -> frozenset[uuid.UUID]:
        """The organizations whose outputs this feed shows: its caller must keep the right to see them."""
        raise NotImplementedError

    def replay_rows(self) -> QuerySet[TaskOutput]:
        raise NotImplementedError

    def replay_text(self, row: TaskOutput) -> str:
        raise NotImplementedError

    # The texts `replay_text` made, shared by the feed's consumers of a process: as many as the longest replay,
    # since a replay longer than the cache misses on its oldest rows every time (in the soak, with 5,000,
    # replays of 70 s of writes slowed down until clients stopped reaching `resumed`).
    replay_texts: live.ReplayTexts


class FlowExecutionFeedConsumer(LiveFeedConsumer):
    """`/ws/flow-executions/{id}/`: every task output of one flow execution, and its status changes."""

    flow_execution: FlowExecution

    async def open_feed(self, caller: WebSocketCaller) -> tuple[str, ...] | int:
        flow_execution = await database_sync_to_async(self._find)(caller, self.scope["url_route"]["kwargs"]["pk"])
        if flow_execution is None:
            return CLOSE_NOT_FOUND
        self.flow_execution = flow_execution
        return (flow_group(flow_execution.id),)

    def _find(self, caller: WebSocketCaller, pk: str) -> FlowExecution | None:
        flows = FlowExecution.objects.exclude(status=Status.DELETED)
        if caller.organization_ids is not None:
            flows = flows.filter(organization_id__in=caller.organization_ids)
        with self.scoped():
            return flows.filter(pk=pk).first()

    def watched_organization_ids(self) -> frozenset[uuid.UUID]:
        return frozenset({self.flow_execution.organization_id})

    def replay_rows(self) -> QuerySet[TaskOutput]:
        return TaskOutput.objects.filter(
            organization_id=self.flow_execution.organization_id, flow_execution_id=self.flow_execution.id
        )

    replay_texts = live.ReplayTexts(settings.WS_REPLAY_CACHE_MB * 2**20)

    def replay_text(self, row: TaskOutput) -> str:
        return live.flow_message(row, live.replay_event_type(row))

    async def task_output_created(self, event: dict[str, Any]) -> None:
        await self.forward(event["text"])

    task_output_updated = task_output_created
    flow_execution_updated = task_output_created


class SummaryFeedConsumer(LiveFeedConsumer):
    """`/ws/task-outputs/summaries/`: compact records of the organization's task outputs as they are written,
    and `flow_execution.updated` when one of its flow executions changes status.

    Query filters, as in the REST API: `task_name` and `status` (any of; repeatable or comma-separated),
    `tag` (repeatable; all must be present), `organization_id` (one of the caller's organizations).
    """

    organization_ids: frozenset[uuid.UUID]
    task_names: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    tags: tuple[str, ...] = ()

    async def open_feed(self, caller: WebSocketCaller) -> tuple[str, ...] | int:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if set(query) - {"task_name", "status", "tag", "organization_id"}:
            return CLOSE_MALFORMED
        split = [part for value in query.get("status", []) for part in value.split(",") if part]
        if any(status not in Status.values for status in split):
            return CLOSE_MALFORMED
        self.statuses = frozenset(split)
        self.task_names = frozenset(part for value in query.get("task_name", []) for part in value.split(",") if part)
        self.tags = tuple(value for value in query.get("tag", []) if value)
        organization_ids = await database_sync_to_async(self._organizations)(caller, query.get("organization_id", []))
        if isinstance(organization_ids, int):
            return organization_ids
        self.organization_ids = organization_ids
        return tuple(summary_group(pk) for pk in sorted(map(str, organization_ids)))

    def watched_organization_ids(self) -> frozenset[uuid.UUID]:
        return self.organization_ids

    def _organizations(self, caller: WebSocketCaller, requested: list[str]) -> frozenset[uuid.UUID] | int:
        with self.scoped():
            return self._allowed_organizations(caller, requested)

    @staticmethod
    def _allowed_organizations(caller: WebSocketCaller, requested: list[str]) -> frozenset[uuid.UUID] | int:
        if len(requested) > 1:
            return CLOSE_MALFORMED
        if requested:
            try:
                wanted = uuid.UUID(requested[0])
            except ValueError:
                return CLOSE_MALFORMED
            allowed = caller.organization_ids
            if (allowed is None and Organization.objects.filter(pk=wanted).exists()) or (allowed and wanted in allowed):
                return frozenset({wanted})
            return CLOSE_FORBIDDEN
        if caller.organization_ids is None:  # a superuser without a choice: every organization
            return frozenset(Organization.objects.values_list("pk", flat=True))
        return caller.organization_ids or CLOSE_FORBIDDEN

    def _wanted(self, task_name: str, status: str, tags: list[str]) -> bool:
        return (
            (not self.task_names or task_name in self.task_names)
            and (not self.statuses or status in self.statuses)
            and all(tag in tags for tag in self.tags)
        )

    def replay_rows(self) -> QuerySet[TaskOutput]:
        # Deleted outputs replay too (as their deletion); those of deleted flow executions are gone.
        rows = TaskOutput.objects.filter(organization_id__in=self.organization_ids).exclude(
            flow_execution__status=Status.DELETED
        )
        if self.task_names:
            rows = rows.filter(task_name__in=self.task_names)
        if self.statuses:
            rows = rows.filter(status__in=self.statuses)
        if self.tags:
            rows = rows.filter(JSONArrayContainsAll("tags", list(self.tags)))
        return rows

    replay_texts = live.ReplayTexts(settings.WS_REPLAY_CACHE_MB * 2**20)

    def replay_text(self, row: TaskOutput) -> str:
        return live.summary_message(row)

    async def task_output_summary(self, event: dict[str, Any]) -> None:
        if self._wanted(event["task_name"], event["status"], event["tags"]):
            await self.forward(event["text"])

    async def flow_execution_updated(self, event: dict[str, Any]) -> None:
        """Status changes of the organization's flow executions, whatever the filters."""
        await self.forward(event["text"])
