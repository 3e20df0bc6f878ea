"""`manage.py purge_task_outputs --older-than 30d [--organization ID] [--include-deleted-only] [--execute]`.

Removes old task outputs for good (docs/operations.md, "Retention"; the rules are in task_outputs.retention).
A dry run unless --execute: it prints, per organization, what --execute would delete, and deletes nothing.

Not a SystemCommand: that runs the whole command in one transaction, and a purge must not hold its locks
for the whole run. Here only the plan (and the organization lookup) bypasses row-level security, with the
same logged reason as SystemCommand's; each batch is its own short transaction scoped to its organization.
"""

from __future__ import annotations

from datetime import UTC

from django.core.management.base import BaseCommand, CommandError

from superai_flow.organizations.selectors import organization_by_name_or_id
from superai_flow.tenancy import system_scope
from task_outputs import retention

REASON = "manage.py purge_task_outputs"


class Command(BaseCommand):
    help = (
        "Delete task outputs older than --older-than for good, in batches, never those of a flow execution "
        "that is still running (queued, running, in_progress). A dry run unless --execute: it prints what "
        "would be deleted per organization. Without --include-deleted-only, outputs in any status are "
        "deleted; with it, only soft-deleted ones (status deleted)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            required=True,
            metavar="DURATION",
            help="Delete outputs whose created_at is more than this long ago: a positive whole number and a "
            "unit, m (minutes), h (hours), d (days) or w (weeks), e.g. 30d, 12h, 90m, 2w.",
        )
        parser.add_argument(
            "--organization",
            metavar="ID",
            help="Only this organization (its id, or its exact name). Default: every organization.",
        )
        parser.add_argument(
            "--include-deleted-only",
            action="store_true",
            help="Only outputs that are soft-deleted (status deleted). Without it: old outputs in any status.",
        )
        parser.add_argument(
            "--execute",
            action="store_true",
            help="Really delete. Without it, a dry run: prints what would be deleted and deletes nothing.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=retention.DEFAULT_BATCH_SIZE,
            metavar="N",
            help=f"Outputs deleted per transaction, 1 to {retention.MAX_BATCH_SIZE} "
            f"(default {retention.DEFAULT_BATCH_SIZE}).",
        )

    def handle(
        self,
        *args,
        older_than: str,
        organization: str | None,
        include_deleted_only: bool,
        execute: bool,
        batch_size: int,
        **options,
    ):
        try:
            age = retention.parse_duration(older_than)
        except ValueError as error:
            raise CommandError(f"--older-than: {error}") from None
        if not 1 <= batch_size <= retention.MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be 1 to {retention.MAX_BATCH_SIZE} (got {batch_size}).")
        organization_id = None
        if organization is not None:
            with system_scope(REASON):
                found = organization_by_name_or_id(organization)
            if found is None:
                raise CommandError(f"No organization has the id or name {organization!r}.")
            organization_id = found.id

        criteria = retention.Criteria.older_than(age, deleted_only=include_deleted_only)
        plans = retention.plan(criteria, organization_id=organization_id, reason=REASON)
        self.stdout.write(
            f"{'Deleting' if execute else 'Dry run, nothing is deleted (add --execute to delete)'}: task outputs "
            f"older than {older_than} (created before {criteria.cutoff.astimezone(UTC).isoformat()}), "
            f"{criteria.statuses}, of finished flow executions, in batches of {batch_size}."
        )
        total = organizations = 0
        for plan in plans:
            name = f"{plan.organization.name} ({plan.organization.id})"
            kept = ", ".join(
                f"{count} {why}"
                for count, why in (
                    (plan.kept_running, "of running flow executions"),
                    (plan.kept_live, "still needed by live cursors (a later run takes them)"),
                )
                if count
            )
            kept = f"; keeping {kept}" if kept else ""
            if not execute:
                self.stdout.write(f"{name}: would delete {plan.purgeable}{kept}")
                deleted = plan.purgeable
            else:
                deleted = 0
                if plan.purgeable:
                    for batch in retention.purge(criteria, plan.organization, batch_size=batch_size):
                        deleted = batch.total
                        self.stdout.write(
                            f"{name}: batch {batch.number}: deleted {batch.deleted} ({batch.total} of {plan.purgeable})"
                        )
                self.stdout.write(f"{name}: deleted {deleted}{kept}")
            total += deleted
            organizations += bool(deleted)
        self.stdout.write(
            f"Total: {'deleted' if execute else 'would delete'} {total} task outputs "
            f"in {organizations} organization{'' if organizations == 1 else 's'}."
        )
