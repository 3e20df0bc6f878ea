"""Writes for flow and task executions; every status change goes through the lifecycle."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from flow_executions.lifecycle import Status, check_transition, stamp_times
from flow_executions.models import FlowExecution, TaskExecution
from superai_flow.db import create_idempotently, lock_for_change
from superai_flow.exceptions import UnprocessableEntity, detail


def _start_times(model, status: str):
    """server_values for a create: the lifecycle timestamps a record starting in `status` gets."""

    def times() -> dict[str, datetime | None]:
        record = model(status=status)
        stamp_times(record, status, timezone.now(), finished_field=model.finished_field)
        return {"started_at": record.started_at, model.finished_field: getattr(record, model.finished_field)}

    return times


def flow_execution_create(
    *,
    organization_id: uuid.UUID,
    flow_name: str,
    flow_version: int = 1,
    input: Any = None,
    status: str = Status.QUEUED,
    modified_by: str = "system",
    id: uuid.UUID | None = None,
) -> tuple[FlowExecution, bool]:
    """Create a flow execution; with a client `id`, a retry returns the stored one (see create_idempotently)."""
    values = {
        "organization_id": organization_id,
        "flow_name": flow_name,
        "flow_version": flow_version,
        "input": input,
        "status": status,
        "modified_by": modified_by,
    }
    return create_idempotently(FlowExecution, id=id, values=values, server_values=_start_times(FlowExecution, status))


def change_status(record, status: str | None, now: datetime) -> bool:
    """Move a locked flow or task execution to `status` under the lifecycle; whether anything changed."""
    if status is None or not check_transition(record.status, status):
        return False
    record.status = status
    stamp_times(record, status, now, finished_field=record.finished_field)
    return True


@transaction.atomic
def flow_execution_update(
    *, flow_execution: FlowExecution, actor: str, status: str | None = None, modified_by: str | None = None
) -> FlowExecution:
    """Change the status (lifecycle enforced) and record who did it: `modified_by`, else the `actor`."""
    record = lock_for_change(flow_execution)
    changed = change_status(record, status, timezone.now())
    if changed or (modified_by is not None and modified_by != record.modified_by):
        record.modified_by = modified_by or actor
        record.save()
    return record


def flow_execution_delete(*, flow_execution: FlowExecution, actor: str) -> None:
    """Soft delete: the record stays (admin shows it) but every list and read of the API hides it."""
    flow_execution_update(flow_execution=flow_execution, actor=actor, status=Status.DELETED)


def task_execution_create(
    *,
    flow_execution: FlowExecution,
    task_name: str,
    input: Any = None,
    status: str = Status.QUEUED,
    attempt: int = 1,
    id: uuid.UUID | None = None,
) -> tuple[TaskExecution, bool]:
    """Create a task execution of `flow_execution`; with a client `id`, retries are idempotent."""
    values = {
        "organization_id": flow_execution.organization_id,
        "flow_execution_id": flow_execution.id,
        "task_name": task_name,
        "input": input,
        "status": status,
        "attempt": attempt,
    }
    return create_idempotently(TaskExecution, id=id, values=values, server_values=_start_times(TaskExecution, status))


_UNSET: Any = object()


@transaction.atomic
def task_execution_update(
    *,
    task_execution: TaskExecution,
    actor: str,
    status: str | None = None,
    output: Any = _UNSET,
    error: Any = _UNSET,
    retries: int | None = None,
    started_at: datetime | None = _UNSET,
    finished_at: datetime | None = _UNSET,
    modified_by: str | None = None,
) -> TaskExecution:
    """Record progress of a task execution; the status follows the lifecycle, explicit times win."""
    record = lock_for_change(task_execution)
    before = {name: getattr(record, name) for name in ("output", "error", "retries", "started_at", "finished_at")}
    status_changed = change_status(record, status, timezone.now())
    for name, value in (("output", output), ("error", error), ("started_at", started_at), ("finished_at", finished_at)):
        if value is not _UNSET:
            setattr(record, name, value)
    if retries is not None:
        record.retries = retries
    if record.started_at and record.finished_at and record.finished_at < record.started_at:
        raise UnprocessableEntity(details=[detail("finished_at", "before_start", "Must not be before started_at.")])
    changed = status_changed or any(getattr(record, name) != value for name, value in before.items())
    if changed or (modified_by is not None and modified_by != record.modified_by):
        record.modified_by = modified_by or actor
        record.save()
    return record
