"""Reads for flow and task executions."""

from __future__ import annotations

import uuid

from django.db.models import Count

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution, TaskExecution


def flow_execution_get(*, organization_id: uuid.UUID, flow_execution_id: uuid.UUID) -> FlowExecution | None:
    """The organization's flow execution with this id, unless it does not exist or is soft-deleted."""
    return (
        FlowExecution.objects.filter(pk=flow_execution_id, organization_id=organization_id)
        .exclude(status=Status.DELETED)
        .first()
    )


def task_execution_get(*, flow_execution: FlowExecution, task_execution_id: uuid.UUID) -> TaskExecution | None:
    """The task execution with this id, when it belongs to `flow_execution` and is not soft-deleted."""
    return (
        TaskExecution.objects.filter(pk=task_execution_id, flow_execution=flow_execution)
        .exclude(status=Status.DELETED)
        .first()
    )


def task_output_counts(flow_execution: FlowExecution) -> dict[str, int]:
    """How many task outputs of `flow_execution` are in each status; every status but `deleted` is listed."""
    rows = (
        flow_execution.task_outputs.exclude(status=Status.DELETED)
        .values_list("status")
        .annotate(count=Count("pk"))
        .order_by()
    )
    found = dict(rows)
    return {status: found.get(status, 0) for status in Status.values if status != Status.DELETED}
