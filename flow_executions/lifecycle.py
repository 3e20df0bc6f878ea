"""Status values shared by flow executions, task executions and task outputs (contract: "Status values")."""

from __future__ import annotations

from django.db import models


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
