"""Writes for task outputs: create, change (stale, deleted, tags) and soft delete."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction

from flow_executions.lifecycle import TASK_OUTPUT_TARGETS, Status, check_transition
from flow_executions.models import FlowExecution, TaskExecution
from superai_flow.db import create_idempotently, lock_for_change
from task_outputs import live
from task_outputs.models import TaskOutput


def task_output_create(
    *,
    flow_execution: FlowExecution,
    task_name: str,
    summary: dict[str, Any] | str,
    output: Any = None,
    tags: Iterable[str] = (),
    status: str = Status.QUEUED,
    modified_by: str = "system",
    task_execution: TaskExecution | None = None,
    id: uuid.UUID | None = None,
    created_at: datetime | None = None,
) -> tuple[TaskOutput, bool]:
    """Store a task output of `flow_execution`, inheriting its organization and flow version.

    Returns (output, created). With a client `id` the create is idempotent (see create_idempotently);
    `created_at` backfills when the output was produced and is compared on retries only when given.
    """
    values = {
        "organization_id": flow_execution.organization_id,
        "flow_execution_id": flow_execution.id,
        "flow_version": flow_execution.flow_version,
        "task_execution_id": task_execution.id if task_execution else None,
        "task_name": task_name,
        "status": status,
        "summary": summary,
        "output": output,
        "tags": list(dict.fromkeys(tags)),
        "modified_by": modified_by,
    }
    if created_at is not None:
        values["created_at"] = created_at
    return create_idempotently(TaskOutput, id=id, values=values, server_values=live.write_position)


@transaction.atomic
def task_output_update(
    *,
    task_output: TaskOutput,
    actor: str,
    status: str | None = None,
    tags: Iterable[str] | None = None,
    modified_by: str | None = None,
) -> TaskOutput:
    """Mark stale or deleted (the lifecycle, restricted to those), retag; watchers get `task_output.updated`."""
    record = lock_for_change(task_output)
    changed = status is not None and check_transition(record.status, status, targets=TASK_OUTPUT_TARGETS)
    if changed:
        record.status = status
    if tags is not None and list(dict.fromkeys(tags)) != record.tags:
        record.tags = list(dict.fromkeys(tags))
        changed = True
    if changed or (modified_by is not None and modified_by != record.modified_by):
        record.modified_by = modified_by or actor
        for name, value in live.write_position().items():
            setattr(record, name, value)
        record.revision += 1
        record.save()
    return record


def task_output_delete(*, task_output: TaskOutput, actor: str) -> None:
    """Soft delete: kept for audit, hidden from every list and read; watchers see it go."""
    task_output_update(task_output=task_output, actor=actor, status=Status.DELETED)
