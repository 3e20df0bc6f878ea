"""Status values and the one lifecycle rule set (contract: "Status values and lifecycle").

Flow executions and task executions follow it; task outputs follow it restricted to `stale` and
`deleted`. Every status change in the service goes through `check_transition` and `stamp_times`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from django.db import models

from superai_flow.exceptions import APIError, detail


class Status(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    DELETED = "deleted"
    STALE = "stale"


# What a record may be created with: everything but `deleted` (soft delete is an operation, not a start).
CREATABLE_STATUSES = [status for status in Status.values if status != Status.DELETED]
# Forward along this chain, skipping steps if need be.
CHAIN = [Status.QUEUED, Status.RUNNING, Status.IN_PROGRESS, Status.COMPLETED, Status.FAILED]
FINISHED = frozenset({Status.COMPLETED, Status.FAILED})
STARTED = frozenset({Status.RUNNING, Status.IN_PROGRESS, *FINISHED})
# What a task output's status may be changed to after it was created.
TASK_OUTPUT_TARGETS = frozenset({Status.STALE, Status.DELETED})


class InvalidTransition(APIError):
    status_code, code = 409, "invalid_transition"

    def __init__(self, current: str, target: str):
        message = f"The status cannot change from {current} to {target}."
        super().__init__(message, details=[detail("status", "invalid_transition", message)])
        self.current, self.target = current, target


def is_allowed(current: str, target: str) -> bool:
    """The lifecycle: forward along CHAIN, anything to deleted, completed/failed to stale, same is a no-op."""
    if current == target:
        return True
    if current == Status.DELETED:
        return False
    if target == Status.DELETED:
        return True
    if target == Status.STALE:
        return current in FINISHED
    return current in CHAIN and target in CHAIN and CHAIN.index(target) > CHAIN.index(current)


def check_transition(current: str, target: str, *, targets: Collection[str] | None = None) -> bool:
    """Whether the status changes (False for the same status); InvalidTransition when it may not."""
    if current == target:
        return False
    if (targets is not None and target not in targets) or not is_allowed(current, target):
        raise InvalidTransition(current, target)
    return True


def stamp_times(record: models.Model, target: str, now: datetime, *, finished_field: str) -> None:
    """`started_at` when first started, `<finished_field>` when first completed or failed."""
    if target in STARTED and record.started_at is None:
        record.started_at = now
    if target in FINISHED and getattr(record, finished_field) is None:
        setattr(record, finished_field, now)
