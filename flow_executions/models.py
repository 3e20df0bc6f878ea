"""Flow executions (one run of a workflow) and task executions (one attempt of one of its tasks)."""

from __future__ import annotations

from django.db import models

from flow_executions.lifecycle import Status
from superai_flow.db import TimestampedModel
from superai_flow.organizations.models import Organization

MAX_FLOW_VERSION = 2**31 - 1


class FlowExecution(TimestampedModel):
    """One run of a workflow. Owns its task executions and task outputs; soft-deleted via status `deleted`."""

    # Not indexed alone: every index below starts with the organization.
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="flow_executions", db_index=False
    )
    flow_name = models.CharField(max_length=200)
    flow_version = models.IntegerField(default=1)
    input = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    modified_by = models.CharField(max_length=255, default="system")
    started_at = models.DateTimeField(null=True, blank=True, help_text="When it first ran.")
    completed_at = models.DateTimeField(null=True, blank=True, help_text="When it first completed or failed.")

    finished_field = "completed_at"

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "created_at", "id"], name="flow_exec_org_created"),
            models.Index(fields=["organization", "flow_name", "created_at"], name="flow_exec_org_name_created"),
            models.Index(fields=["organization", "status", "created_at"], name="flow_exec_org_status_created"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(flow_version__gte=1, flow_version__lte=MAX_FLOW_VERSION),
                name="%(app_label)s_%(class)s_flow_version_range",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=Status.values), name="%(app_label)s_%(class)s_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.flow_name} v{self.flow_version} ({self.id})"

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance.saved_status = instance.__dict__.get("status")
        return instance

    @property
    def is_deleted(self) -> bool:
        return self.status == Status.DELETED


class TaskExecution(TimestampedModel):
    """The full record of one attempt of one task of a flow execution: input, output, error, timing."""

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="task_executions", db_index=False
    )
    flow_execution = models.ForeignKey(
        FlowExecution, on_delete=models.CASCADE, related_name="task_executions", db_index=False
    )
    task_name = models.CharField(max_length=200)
    input = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    attempt = models.PositiveIntegerField(default=1)
    retries = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    modified_by = models.CharField(max_length=255, default="system")

    finished_field = "finished_at"

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "flow_execution", "created_at"], name="task_exec_org_flow_created"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(attempt__gte=1), name="%(app_label)s_%(class)s_attempt_min"),
            models.CheckConstraint(
                condition=models.Q(status__in=Status.values), name="%(app_label)s_%(class)s_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} attempt {self.attempt} ({self.id})"

    @property
    def is_deleted(self) -> bool:
        return self.status == Status.DELETED

    @property
    def duration_ms(self) -> int | None:
        """Milliseconds from start to finish, when both are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds() * 1000)
