"""Reads for task outputs: what is visible."""

from __future__ import annotations

from django.db.models import QuerySet

from flow_executions.lifecycle import Status
from task_outputs.models import TaskOutput


def visible_task_outputs() -> QuerySet[TaskOutput]:
    """Task outputs that are not soft-deleted and whose flow execution is not either."""
    return TaskOutput.objects.exclude(status=Status.DELETED).exclude(flow_execution__status=Status.DELETED)
