"""Retention of task outputs: which old outputs may be removed for good, and removing them in short batches.

`manage.py purge_task_outputs` (docs/operations.md, "Retention") is the interface; this module holds the
rules, so that the dry run and the real run select exactly the same rows:

- old: `created_at` before the cutoff; with `deleted_only`, also soft-deleted (status `deleted`);
- never an output of a flow execution that is still running: only flow executions in a final status
  (FINAL_FLOW_STATUSES) give up their outputs; any other status, including one added later, keeps them;
- never a row that live cursors still depend on (task_outputs.live): one written in the last
  LIVE_CURSOR_GRACE_SECONDS (the first such write anchors the cursors of later messages) and, on SQLite,
  the row with the highest `write_txid` (the next write is numbered from it, and numbering again from a
  lower one would hide later writes from clients holding a cursor).

Nothing references a task output (no foreign key points at the table; it points at its organization,
flow execution and task execution), so a hard delete leaves nothing dangling and cascades nothing.
Purges send no live messages: the rows are old and their flow executions finished.

Each batch is its own transaction, scoped to the one organization it deletes from (on PostgreSQL,
row-level security then refuses any row of another organization); only the plan, which counts every
organization, bypasses row-level security, with a logged reason. Batches are selected by
(`created_at`, `id`) from where the previous one ended (the organization/created_at index), then deleted
by primary key with the rules checked again in the DELETE itself, so a row that changed in between is
left alone and never selected twice.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, QuerySet, Subquery
from django.utils import timezone

from flow_executions.lifecycle import Status
from superai_flow.organizations.models import Organization
from superai_flow.tenancy import system_scope, tenant_scope
from task_outputs.models import TaskOutput

logger = logging.getLogger("superai_flow.retention")

# Flow executions that will not write or change outputs any more: the lifecycle never leaves these.
FINAL_FLOW_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.STALE, Status.DELETED})
DEFAULT_BATCH_SIZE = 1_000
MAX_BATCH_SIZE = 10_000

_DURATION = re.compile(r"([0-9]{1,9})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w`: a positive whole number and one unit. ValueError otherwise."""
    match = _DURATION.fullmatch(text)
    if match is None and _DURATION.fullmatch(text.removeprefix("-")):
        raise ValueError(f"{text!r} is not a positive duration.")
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: use a positive whole number followed by m (minutes), h (hours), "
            "d (days) or w (weeks), e.g. 30d, 12h, 90m, 2w."
        )
    amount, unit = int(match.group(1)), match.group(2)
    if amount <= 0:
        raise ValueError(f"{text!r} is not a positive duration: it must be at least 1{unit}.")
    try:
        duration = timedelta(**{_UNITS[unit]: amount})
        timezone.now() - duration  # a cutoff that exists
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration.") from None
    return duration


@dataclass(frozen=True)
class Criteria:
    """What is old enough: created before `cutoff` (and soft-deleted, with `deleted_only`), last written
    before `written_before`. Fixed when the run starts, so that every batch applies the same ones."""

    cutoff: datetime
    written_before: datetime
    deleted_only: bool = False

    @classmethod
    def older_than(cls, age: timedelta, *, deleted_only: bool = False, now: datetime | None = None) -> Criteria:
        now = now or timezone.now()
        grace = timedelta(seconds=settings.LIVE_CURSOR_GRACE_SECONDS)
        return cls(cutoff=now - age, written_before=now - grace, deleted_only=deleted_only)

    def describe(self) -> str:
        return f"created before {self.cutoff.astimezone(UTC).isoformat()}, {self.statuses}"

    @property
    def statuses(self) -> str:
        return "soft-deleted (status deleted)" if self.deleted_only else "in any status"


def _old(criteria: Criteria) -> QuerySet[TaskOutput]:
    rows = TaskOutput.objects.filter(created_at__lt=criteria.cutoff)
    return rows.filter(status=Status.DELETED) if criteria.deleted_only else rows


def purgeable(criteria: Criteria, organization_id: uuid.UUID | None = None) -> QuerySet[TaskOutput]:
    """The task outputs a purge with `criteria` removes (of one organization, if given)."""
    rows = _old(criteria).filter(
        updated_at__lt=criteria.written_before, flow_execution__status__in=sorted(FINAL_FLOW_STATUSES)
    )
    if organization_id is not None:
        rows = rows.filter(organization_id=organization_id)
    if connection.vendor == "sqlite":  # in the same statement: the highest write_txid stays
        newest = TaskOutput.objects.order_by("-write_txid").values("write_txid")[:1]
        rows = rows.filter(write_txid__lt=Subquery(newest))
    return rows


@dataclass(frozen=True)
class OrganizationPlan:
    organization: Organization
    purgeable: int  # what a purge removes now
    kept_running: int  # old enough, but their flow execution is still running
    kept_live: int  # old enough, of a finished flow execution, but live cursors still need the row


def plan(criteria: Criteria, *, organization_id: uuid.UUID | None = None, reason: str) -> list[OrganizationPlan]:
    """Per organization (by name), what a purge removes and which old outputs it keeps, and why.

    Organizations with none of these are left out, except `organization_id`. One transaction that sees
    every organization (row-level security bypassed for `reason`).
    """
    finished = Q(flow_execution__status__in=sorted(FINAL_FLOW_STATUSES))
    with system_scope(reason):
        old_rows = _old(criteria)
        if organization_id is not None:
            old_rows = old_rows.filter(organization_id=organization_id)
        old = _per_organization(old_rows, finished=Count("id", filter=finished), running=Count("id", filter=~finished))
        counts = {row["organization_id"]: row for row in old}
        removable = {
            row["organization_id"]: row["count"] for row in _per_organization(purgeable(criteria, organization_id))
        }
        if organization_id is not None:
            counts = {organization_id: counts.get(organization_id, {})}
        organizations = Organization.objects.filter(pk__in=counts).order_by("name", "id")
        return [
            OrganizationPlan(
                organization=org,
                purgeable=removable.get(org.id, 0),
                kept_running=counts[org.id].get("running", 0),
                kept_live=max(0, counts[org.id].get("finished", 0) - removable.get(org.id, 0)),
            )
            for org in organizations
        ]


def _per_organization(rows: QuerySet[TaskOutput], **counts) -> QuerySet:
    return rows.order_by().values("organization_id").annotate(**(counts or {"count": Count("id")}))


@dataclass(frozen=True)
class Batch:
    number: int
    deleted: int
    total: int  # deleted so far in this organization, this batch included


def purge(criteria: Criteria, organization: Organization, *, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[Batch]:
    """Delete `organization`'s purgeable outputs, `batch_size` at a time, each batch its own short
    transaction scoped to the organization; yields each batch once it is committed."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"The batch size must be 1 to {MAX_BATCH_SIZE}.")
    after: tuple[datetime, uuid.UUID] | None = None
    number = total = 0
    while True:
        with tenant_scope([organization.id]):
            rows = purgeable(criteria, organization.id)
            pending = rows
            if after is not None:
                pending = rows.filter(Q(created_at__gt=after[0]) | Q(created_at=after[0], id__gt=after[1]))
            keys = list(pending.order_by("created_at", "id").values_list("created_at", "id")[:batch_size])
            if not keys:
                break
            deleted, _ = rows.filter(pk__in=[pk for _, pk in keys]).delete()
            number, total, after = number + 1, total + deleted, keys[-1]
            logger.info(
                "Purged %d task outputs of organization %s (%s), batch %d, created %s to %s; criteria: %s.",
                deleted, organization.id, organization.name, number, keys[0][0].isoformat(),
                keys[-1][0].isoformat(), criteria.describe(),
            )  # fmt: skip
            logger.debug(
                "Batch %d of organization %s, selected ids: %s", number, organization.id, [str(pk) for _, pk in keys]
            )
        yield Batch(number=number, deleted=deleted, total=total)
        if len(keys) < batch_size:  # that was the last of them
            break
    logger.info(
        "Purge of organization %s (%s) done: %d task outputs deleted in %d batch%s.",
        organization.id, organization.name, total, number, "" if number == 1 else "es",
    )  # fmt: skip
