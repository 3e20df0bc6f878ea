"""Writes for task outputs: create, change (stale, deleted, tags) and soft delete."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models.signals import post_save
from django.utils import timezone

from flow_executions.lifecycle import TASK_OUTPUT_TARGETS, Status, check_transition
from flow_executions.selectors import FLOW_EXECUTION_NOT_FOUND, referenced_flow_execution, referenced_task_execution
from superai_flow.db import lock_for_change, replayed
from superai_flow.exceptions import NotFound
from superai_flow.tenancy import tenant_scope
from task_outputs import live
from task_outputs.models import TaskOutput


def task_output_create(
    *,
    organization_id: uuid.UUID,
    flow_execution_id: uuid.UUID,
    task_name: str,
    summary: dict[str, Any] | str,
    output: Any = None,
    tags: Iterable[str] = (),
    status: str = Status.QUEUED,
    modified_by: str = "system",
    task_execution_id: uuid.UUID | None = None,
    id: uuid.UUID | None = None,
    created_at: datetime | None = None,
    statement_scope: Iterable[uuid.UUID] = (),
) -> tuple[TaskOutput, bool]:
    """Store a task output of the organization's flow execution, inheriting its flow version.

    Returns (output, created). NotFound, naming the field, unless `flow_execution_id` is a flow
    execution of `organization_id` that is not deleted and `task_execution_id` (if given) one of its
    task executions. With a client `id` the create is idempotent: a retry with the same values returns
    the stored output, any difference (or an id used elsewhere) is a Conflict; `created_at` backfills
    when the output was produced and is compared on retries only when given.

    One statement does the common case: an INSERT ... SELECT from the flow execution, which checks the
    references, inherits the flow version, takes the live write position (task_outputs.live) and, with
    ON CONFLICT DO NOTHING, settles concurrent retries of an id without a savepoint. The ORM's form
    took five round trips (reference lookup, savepoint, write position, insert, release); this one
    takes one, and only a create that inserted nothing looks further. docs/performance.md has the figures.

    Inside a transaction the create runs in its scope (superai_flow.tenancy). Outside one, on PostgreSQL,
    `statement_scope` (the caller's organizations, from its credentials) scopes the INSERT's own
    statement (superai_insert_task_output, migration 0007), which is then its whole transaction: no
    BEGIN, no COMMIT, no separate scope statement. Without a scope nothing is visible, so nothing is
    inserted and the create answers 404.
    """
    values = {
        "organization_id": organization_id,
        "flow_execution_id": flow_execution_id,
        "task_execution_id": task_execution_id,
        "task_name": task_name,
        "status": status,
        "summary": summary,
        "output": output,
        "tags": list(dict.fromkeys(tags)),
        "modified_by": modified_by,
    }
    if created_at is not None:
        values["created_at"] = created_at
    scope = None
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        scope = ",".join(str(pk) for pk in statement_scope)
    for _ in range(2):  # a second time only if the flow execution appeared between the insert and the look
        inserted = _insert(values, id=id or uuid.uuid4(), scope=scope)
        if inserted is not None:
            post_save.send(sender=TaskOutput, instance=inserted, created=True, update_fields=None, raw=False,
                           using=inserted._state.db)  # fmt: skip
            return inserted, True
        with tenant_scope(statement_scope) if scope is not None else nullcontext():
            flow_execution = referenced_flow_execution(
                organization_id=organization_id, flow_execution_id=flow_execution_id
            )
            if task_execution_id is not None:
                referenced_task_execution(flow_execution=flow_execution, task_execution_id=task_execution_id)
            if id is not None:
                return replayed(TaskOutput.objects.filter(pk=id).first(), values), False
    raise RuntimeError("A task output could not be inserted although its references resolve.")


def _insert(values: dict[str, Any], *, id: uuid.UUID, scope: str | None) -> TaskOutput | None:
    """The new task output, or None when nothing was inserted (references not found, or `id` taken).

    `scope`: the organizations (comma-separated) to scope the statement to, or None for the current
    transaction's (PostgreSQL; see task_output_create).
    """
    now = timezone.now()
    task_execution_id = values["task_execution_id"]
    record = {"id": id, "created_at": values.get("created_at", now), "updated_at": now}
    record.update((name, values[name]) for name in _STORED)
    params = [_FIELDS[name].get_db_prep_save(value, connection) for name, value in record.items()]
    params.append(live.grace_start())  # the write position's (task_outputs.live)
    if connection.vendor == "postgresql":
        sql = _INSERT_FUNCTION_CALL
        params = [scope, *params, values["flow_execution_id"], values["organization_id"]]
    else:
        sql = _insert_sql(task_execution_id is not None)
        references = ["flow_execution_id", "organization_id"] + (["task_execution_id"] if task_execution_id else [])
        params += [_FIELDS[name].get_db_prep_save(values[name], connection) for name in references]
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
    except IntegrityError:  # the flow execution was removed for good while this ran (admin can)
        if connection.in_atomic_block:
            transaction.set_rollback(True)
        raise NotFound("Flow execution not found.", details=[FLOW_EXECUTION_NOT_FOUND]) from None
    if row is None:
        return None
    flow_version, write_txid, write_horizon, cursor_horizon = row
    stored = {
        **record,
        "organization_id": values["organization_id"],
        "flow_execution_id": values["flow_execution_id"],
        "flow_version": flow_version,
        "write_txid": write_txid,
        "write_horizon": write_horizon,
        "cursor_horizon": cursor_horizon,
        "revision": 1,
    }
    output = TaskOutput(*(stored[name] for name in _FIELDS))  # positional, as from_db: Model.__init__'s fast path
    output._state.adding = False
    output._state.db = connection.alias
    return output


# The columns a create writes as given, in the order of _insert_sql's placeholders after id and times.
_STORED = ("task_execution_id", "task_name", "status", "summary", "output", "tags", "modified_by")
_FIELDS = {field.attname: field for field in TaskOutput._meta.concrete_fields}


# PostgreSQL: the function of migration 0007, which holds the same INSERT as _insert_sql.
_INSERT_FUNCTION_CALL = (
    "SELECT flow_version, write_txid, write_horizon, cursor_horizon FROM superai_insert_task_output("
    "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


@functools.cache
def _insert_sql(with_task_execution: bool) -> str:
    """SQLite's INSERT (PostgreSQL's is in superai_insert_task_output)."""
    task_execution = (
        "EXISTS (SELECT 1 FROM flow_executions_taskexecution task WHERE task.id = %s"
        " AND task.flow_execution_id = flow.id AND task.status <> 'deleted')"
        if with_task_execution
        else "TRUE"
    )
    return f"""
        INSERT INTO task_outputs_taskoutput (id, created_at, updated_at, task_execution_id, task_name, status,
            summary, output, tags, modified_by, write_txid, write_horizon, cursor_horizon,
            organization_id, flow_execution_id, flow_version, revision)
        SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, {live.WRITE_POSITION_SQL["sqlite"]},
            flow.organization_id, flow.id, flow.flow_version, 1
        FROM flow_executions_flowexecution flow
        WHERE flow.id = %s AND flow.organization_id = %s AND flow.status <> 'deleted' AND {task_execution}
        ON CONFLICT (id) DO NOTHING
        RETURNING flow_version, write_txid, write_horizon, cursor_horizon
    """


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
