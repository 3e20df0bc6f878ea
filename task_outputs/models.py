"""Task outputs: what a completed task produced, summarized for display and querying."""

from __future__ import annotations

from django.db import models

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution, TaskExecution
from superai_flow.db import TimestampedModel
from superai_flow.organizations.models import Organization


class TaskOutput(TimestampedModel):
    """The result of one task of a flow execution: `summary` to query and show, `output` for downstream tasks.

    `organization` and `flow_version` are copied from the flow execution when the output is created.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="task_outputs", db_index=False
    )
    flow_execution = models.ForeignKey(
        FlowExecution, on_delete=models.CASCADE, related_name="task_outputs", db_index=False
    )
    flow_version = models.IntegerField()
    task_execution = models.ForeignKey(
        TaskExecution, on_delete=models.SET_NULL, related_name="task_outputs", null=True, blank=True
    )
    task_name = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    summary = models.JSONField()
    output = models.JSONField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    modified_by = models.CharField(max_length=255, default="system")
    # Live cursors (task_outputs.live): the transaction that last wrote the row, the oldest transaction
    # still open at that moment, the cursor its messages carry, and how many times the row was written.
    write_txid = models.BigIntegerField(default=0, editable=False)
    write_horizon = models.BigIntegerField(default=0, editable=False)
    cursor_horizon = models.BigIntegerField(default=0, editable=False)
    revision = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        # Each list filter is served by an index that starts with the organization and ends with the
        # pagination key, except the flow execution's: a flow execution pins one organization, and that
        # index also serves its foreign key and admin's search by flow id. Admin's all-organizations
        # list needs created_at alone. GIN indexes on `tags` and `summary` (PostgreSQL) are in 0002.
        indexes = [
            models.Index(fields=["organization", "created_at", "id"], name="task_out_org_created"),
            models.Index(fields=["flow_execution", "created_at", "id"], name="task_out_flow_created"),
            models.Index(fields=["created_at", "id"], name="task_out_created"),
            models.Index(fields=["organization", "task_name", "created_at", "id"], name="task_out_org_task_created"),
            models.Index(fields=["organization", "status", "created_at", "id"], name="task_out_org_status_created"),
            # Replays and `?after=`: what an organization (or, through it, a flow) wrote since a cursor.
            models.Index(fields=["organization", "write_txid", "id"], name="task_out_org_txid"),
            # SQLite numbers writes with MAX(write_txid) + 1.
            models.Index(fields=["write_txid"], name="task_out_txid"),
            # Cursors look up the first write of the last LIVE_CURSOR_GRACE_SECONDS.
            models.Index(fields=["updated_at"], name="task_out_updated"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=Status.values), name="%(app_label)s_%(class)s_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(flow_version__gte=1), name="%(app_label)s_%(class)s_flow_version_min"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} ({self.id})"

    @property
    def is_deleted(self) -> bool:
        return self.status == Status.DELETED


class TaskOutputTag(models.Model):
    """One tag of one task output: what `tag=` filters read on PostgreSQL (task_outputs.selectors.with_tags).

    Not managed by Django: migration 0012 creates the table on PostgreSQL, with triggers on task outputs that
    keep it exact however an output is written; SQLite has no such table and filters the JSON instead."""

    pk = models.CompositePrimaryKey("organization_id", "tag", "created_at", "task_output_id")
    organization_id = models.UUIDField()
    tag = models.TextField()
    created_at = models.DateTimeField()
    task_output = models.ForeignKey(
        TaskOutput, on_delete=models.DO_NOTHING, db_constraint=False, related_name="tag_rows"
    )

    class Meta:
        managed = False
        db_table = "task_outputs_tag"

    def __str__(self) -> str:
        return f"{self.tag} ({self.task_output_id})"
