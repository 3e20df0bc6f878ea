"""Reads for flow and task executions: what is visible, and counts."""

from __future__ import annotations

import uuid

from django.db.models import Count, QuerySet

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution, TaskExecution
from superai_flow.exceptions import NotFound, detail

FLOW_EXECUTION_NOT_FOUND = detail(
    "flow_execution_id", "not_found", "No flow execution with this id in this organization."
)


def visible_flow_executions() -> QuerySet[FlowExecution]:
    """Flow executions that are not soft-deleted."""
    return FlowExecution.objects.exclude(status=Status.DELETED)


def visible_task_executions() -> QuerySet[TaskExecution]:
    """Task executions that are not soft-deleted and whose flow execution is not either."""
    return TaskExecution.objects.exclude(status=Status.DELETED).exclude(flow_execution__status=Status.DELETED)


def flow_execution_get(*, organization_id: uuid.UUID, flow_execution_id: uuid.UUID) -> FlowExecution | None:
    """The organization's flow execution with this id, unless it does not exist or is soft-deleted."""
    return visible_flow_executions().filter(pk=flow_execution_id, organization_id=organization_id).first()


def referenced_flow_execution(*, organization_id: uuid.UUID, flow_execution_id: uuid.UUID) -> FlowExecution:
    """The flow execution a request body names in `flow_execution_id`; 404 naming the field otherwise."""
    flow_execution = flow_execution_get(organization_id=organization_id, flow_execution_id=flow_execution_id)
    if flow_execution is None:
        raise NotFound("Flow execution not found.", details=[FLOW_EXECUTION_NOT_FOUND])
    return flow_execution


def referenced_task_execution(*, flow_execution: FlowExecution, task_execution_id: uuid.UUID) -> TaskExecution:
    """The task execution a body names in `task_execution_id`: of `flow_execution`, not deleted; else 404."""
    task_execution = (
        TaskExecution.objects.filter(pk=task_execution_id, flow_execution=flow_execution)
        .exclude(status=Status.DELETED)
        .first()
    )
    if task_execution is None:
        message = "No task execution with this id in this flow execution."
        raise NotFound("Task execution not found.", details=[detail("task_execution_id", "not_found", message)])
    return task_execution


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
