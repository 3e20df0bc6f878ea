"""Writes for task outputs."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution, TaskExecution
from superai_flow.db import create_idempotently
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
