"""What a live feed shows its caller, whatever carries it (a WebSocket or a Server-Sent Events stream).

A feed is one flow execution's outputs (`FlowFeed`) or an organization's live summaries (`SummaryFeed`).
It says which channel groups to join, which live messages its caller wants, which rows a resume replays and
as what text. The transports (task_outputs/consumers.py) share everything else: joining, holding live
messages during a replay, the replay itself, heartbeats, revocation.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import QuerySet

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution
from superai_flow.authentication import CLOSE_FORBIDDEN, WebSocketCaller
from superai_flow.json_queries import JSONArrayContainsAll
from superai_flow.notifications import flow_group, summary_group
from superai_flow.organizations.models import Organization
from superai_flow.tenancy import tenant_scope
from task_outputs import live
from task_outputs.models import TaskOutput

CLOSE_MALFORMED = 4400
CLOSE_NOT_FOUND = 4404


class FeedRefused(Exception):
    """The caller may not open this feed: `code` is the WebSocket close code (4400, 4403, 4404)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Feed:
    """What both feeds share. `open()` checks what the caller asked for and returns the groups to join."""

    # The texts `replay_text` made, shared by the feed's connections of a process: as many as the longest
    # replay, since a replay longer than the cache misses on its oldest rows every time (in the soak, with
    # 5,000, replays of 70 s of writes slowed down until clients stopped reaching `resumed`).
    replay_texts: ClassVar[live.ReplayTexts]

    def __init__(self, caller: WebSocketCaller, path: str) -> None:
        self.caller = caller
        self.path = path

    def scoped(self):
        """A transaction that sees what the caller may see (row-level security, docs/security.md)."""
        return tenant_scope(self.caller.organization_ids, bypass_reason=f"superuser live feed {self.path}")

    async def open(self) -> tuple[str, ...]:
        raise NotImplementedError

    def watched_organization_ids(self) -> frozenset[uuid.UUID]:
        """The organizations whose outputs this feed shows: its caller must keep the right to see them."""
        raise NotImplementedError

    def wants(self, event: dict[str, Any]) -> bool:
        """Whether a message of the feed's groups goes to this caller."""
        return True

    def replay_rows(self) -> QuerySet[TaskOutput]:
        raise NotImplementedError

    def replay_text(self, row: TaskOutput) -> str:
        raise NotImplementedError


class FlowFeed(Feed):
    """Every task output of one flow execution, and its status changes."""

    flow_execution: FlowExecution
    replay_texts = live.ReplayTexts(settings.WS_REPLAY_CACHE_MB * 2**20)

    def __init__(self, caller: WebSocketCaller, path: str, flow_execution_id: Any) -> None:
        super().__init__(caller, path)
        self.flow_execution_id = flow_execution_id

    async def open(self) -> tuple[str, ...]:
        flow_execution = await database_sync_to_async(self._find)()
        if flow_execution is None:
            raise FeedRefused(CLOSE_NOT_FOUND, "No such flow execution.")
        self.flow_execution = flow_execution
        return (flow_group(flow_execution.id),)

    def _find(self) -> FlowExecution | None:
        try:
            pk = uuid.UUID(str(self.flow_execution_id))
        except ValueError:
            return None
        flows = FlowExecution.objects.exclude(status=Status.DELETED)
        if self.caller.organization_ids is not None:
            flows = flows.filter(organization_id__in=self.caller.organization_ids)
        with self.scoped():
            return flows.filter(pk=pk).first()

    def watched_organization_ids(self) -> frozenset[uuid.UUID]:
        return frozenset({self.flow_execution.organization_id})

    def replay_rows(self) -> QuerySet[TaskOutput]:
        return TaskOutput.objects.filter(
            organization_id=self.flow_execution.organization_id, flow_execution_id=self.flow_execution.id
        )

    def replay_text(self, row: TaskOutput) -> str:
        return live.flow_message(row, live.replay_event_type(row))


class SummaryFeed(Feed):
    """Compact records of an organization's task outputs as they are written, and `flow_execution.updated`
    when one of its flow executions changes status.

    Filters, as in the REST API: `task_name` and `status` (any of; repeatable or comma-separated), `tag`
    (repeatable; all must be present), `organization_id` (one of the caller's organizations).
    """

    FILTERS = frozenset({"task_name", "status", "tag", "organization_id"})

    organization_ids: frozenset[uuid.UUID]
    replay_texts = live.ReplayTexts(settings.WS_REPLAY_CACHE_MB * 2**20)

    def __init__(self, caller: WebSocketCaller, path: str, query: dict[str, list[str]]) -> None:
        super().__init__(caller, path)
        unknown = set(query) - self.FILTERS
        if unknown:
            raise FeedRefused(CLOSE_MALFORMED, f"Unknown parameter {sorted(unknown)[0]!r}.")
        statuses = [part for value in query.get("status", []) for part in value.split(",") if part]
        wrong = [status for status in statuses if status not in Status.values]
        if wrong:
            raise FeedRefused(CLOSE_MALFORMED, f"{wrong[0]!r} is not a status: use one of {', '.join(Status.values)}.")
        self.statuses = frozenset(statuses)
        self.task_names = frozenset(part for value in query.get("task_name", []) for part in value.split(",") if part)
        self.tags = tuple(value for value in query.get("tag", []) if value)
        self.requested = query.get("organization_id", [])

    async def open(self) -> tuple[str, ...]:
        self.organization_ids = await database_sync_to_async(self._organizations)()
        return tuple(summary_group(pk) for pk in sorted(map(str, self.organization_ids)))

    def _organizations(self) -> frozenset[uuid.UUID]:
        with self.scoped():
            return self._allowed_organizations()

    def _allowed_organizations(self) -> frozenset[uuid.UUID]:
        allowed = self.caller.organization_ids
        if len(self.requested) > 1:
            raise FeedRefused(CLOSE_MALFORMED, "Give at most one organization_id.")
        if self.requested:
            try:
                wanted = uuid.UUID(self.requested[0])
            except ValueError:
                raise FeedRefused(CLOSE_MALFORMED, "organization_id is not a UUID.") from None
            if (allowed is None and Organization.objects.filter(pk=wanted).exists()) or (allowed and wanted in allowed):
                return frozenset({wanted})
            raise FeedRefused(CLOSE_FORBIDDEN, "You may not watch this organization.")
        if allowed is None:  # a superuser without a choice: every organization
            return frozenset(Organization.objects.values_list("pk", flat=True))
        if not allowed:
            raise FeedRefused(CLOSE_FORBIDDEN, "You are not a member of any organization.")
        return allowed

    def watched_organization_ids(self) -> frozenset[uuid.UUID]:
        return self.organization_ids

    def wants(self, event: dict[str, Any]) -> bool:
        """Summaries that pass the filters; status changes of flow executions whatever the filters."""
        if event["type"] != "task_output.summary":
            return True
        return (
            (not self.task_names or event["task_name"] in self.task_names)
            and (not self.statuses or event["status"] in self.statuses)
            and all(tag in event["tags"] for tag in self.tags)
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

    def replay_text(self, row: TaskOutput) -> str:
        return live.summary_message(row)
