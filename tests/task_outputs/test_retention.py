"""`manage.py purge_task_outputs`: the retention rules, the dry run, batches, and their scoping."""

from __future__ import annotations

import io
import logging
import re
import uuid
from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution, TaskExecution
from flow_executions.services import flow_execution_delete
from task_outputs import retention
from task_outputs.models import TaskOutput
from task_outputs.services import task_output_delete

NOW_ISH = timedelta(minutes=5)  # younger than any cutoff below, older than the live grace period


def purge(*args: str) -> list[str]:
    """Run the command; its stdout lines."""
    out = io.StringIO()
    call_command("purge_task_outputs", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue().splitlines()


def aged(output: TaskOutput, age: timedelta) -> TaskOutput:
    """`output` as if created and last written `age` ago."""
    moment = timezone.now() - age
    TaskOutput.objects.filter(pk=output.pk).update(created_at=moment, updated_at=moment)
    output.refresh_from_db()
    return output


def line_of(lines: list[str], organization) -> str:
    found = [line for line in lines if line.startswith(f"{organization.name} ({organization.id}): ")]
    assert len(found) == 1, lines
    return found[0]


def remaining() -> set[uuid.UUID]:
    return set(TaskOutput.objects.values_list("pk", flat=True))


@pytest.fixture
def done_a(org_a, make_flow) -> FlowExecution:
    return make_flow(org_a, status=Status.COMPLETED)


@pytest.fixture
def done_b(org_b, make_flow) -> FlowExecution:
    return make_flow(org_b, status=Status.FAILED)


@pytest.fixture
def tenants(done_a, done_b, make_output):
    """Org A: 3 outputs 40 days old, 1 of 5 minutes; Org B: 2 of 31 days, 1 of 29 days. Written in that
    order, so that the newest write (which SQLite keeps, see test_the_newest_write_...) is a recent one."""
    old_a = [aged(make_output(done_a, task_name=f"a{i}"), timedelta(days=40)) for i in range(3)]
    old_b = [aged(make_output(done_b, task_name=f"b{i}"), timedelta(days=31)) for i in range(2)]
    young = [aged(make_output(done_b, task_name="b-young"), timedelta(days=29))]
    young.append(aged(make_output(done_a, task_name="a-young"), NOW_ISH))
    return {output.pk for output in old_a + old_b}, {output.pk for output in young}


# --- Dry run and execute ----------------------------------------------------------------------


def test_a_dry_run_deletes_nothing_and_counts_per_organization(tenants, org_a, org_b):
    lines = purge("--older-than", "30d")

    header = re.fullmatch(
        r"Dry run, nothing is deleted \(add --execute to delete\): task outputs older than 30d \(created before "
        r"(\S+)\), in any status, of finished flow executions, in batches of 1000\.",
        lines[0],
    )
    assert header, lines[0]
    cutoff = datetime.fromisoformat(header.group(1))
    assert abs(timezone.now() - timedelta(days=30) - cutoff) < timedelta(minutes=1)
    assert line_of(lines, org_a) == f"Org A ({org_a.id}): would delete 3"
    assert line_of(lines, org_b) == f"Org B ({org_b.id}): would delete 2"
    assert lines[-1] == "Total: would delete 5 task outputs in 2 organizations."
    assert len(remaining()) == 7


def test_execute_deletes_exactly_the_old_ones_and_keeps_the_new_ones(tenants, org_a, org_b):
    old, young = tenants

    lines = purge("--older-than", "30d", "--execute")

    assert remaining() == young
    assert not old & remaining()
    assert line_of([line for line in lines if "batch" not in line], org_a) == f"Org A ({org_a.id}): deleted 3"
    assert lines[-1] == "Total: deleted 5 task outputs in 2 organizations."


def test_the_dry_run_announces_exactly_what_execute_deletes(done_a, done_b, make_flow, make_output, org_a, org_b):
    running = make_flow(org_a, status=Status.RUNNING)
    for flow in (done_a, done_b, running):
        for age in (timedelta(days=3), timedelta(hours=30), timedelta(hours=1)):
            aged(make_output(flow, status=Status.COMPLETED), age)
            deleted = make_output(flow)
            task_output_delete(task_output=deleted, actor="test")
            aged(deleted, age)
    make_output(done_b)  # the newest write
    for options in (["--include-deleted-only"], ["--organization", str(org_b.id)], []):
        before = remaining()
        dry = purge("--older-than", "1d", *options)
        assert remaining() == before

        executed = purge("--older-than", "1d", *options, "--execute")

        for org in (org_a, org_b):
            if any(line.startswith(org.name) for line in dry):
                would = int(line_of(dry, org).split("would delete ")[1].split(";")[0])
                summary = [line for line in executed if line.startswith(f"{org.name} (") and "batch" not in line]
                assert summary == [line_of(dry, org).replace(f"would delete {would}", f"deleted {would}")]
        total = int(dry[-1].split()[3])
        assert len(before) - len(remaining()) == total == int(executed[-1].split()[2])
    assert TaskOutput.objects.filter(flow_execution=running).count() == 6


def test_the_duration_units(done_a, make_output):
    ages = {
        "90m": (timedelta(minutes=100), timedelta(minutes=80)),
        "12h": (timedelta(hours=13), timedelta(hours=11)),
        "2w": (timedelta(days=15), timedelta(days=13)),
    }
    for duration, (older, younger) in ages.items():
        old = aged(make_output(done_a), older)
        kept = aged(make_output(done_a), younger)
        make_output(done_a)

        purge("--older-than", duration, "--execute")

        assert not TaskOutput.objects.filter(pk=old.pk).exists(), duration
        assert TaskOutput.objects.filter(pk=kept.pk).exists(), duration


# --- What is never deleted -------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.QUEUED, Status.RUNNING, Status.IN_PROGRESS])
def test_outputs_of_a_running_flow_execution_are_kept_however_old(org_a, make_flow, make_output, status):
    flow = make_flow(org_a, status=status)
    ancient = [aged(make_output(flow, status=s), timedelta(days=3650)) for s in (Status.COMPLETED, Status.FAILED)]
    task_output_delete(task_output=ancient[0], actor="test")
    aged(ancient[0], timedelta(days=3650))
    make_output(flow)

    for options in ([], ["--include-deleted-only"]):
        lines = purge("--older-than", "1d", "--execute", *options)

        assert TaskOutput.objects.filter(pk__in=[o.pk for o in ancient]).count() == 2
        kept = 1 if options else 2
        assert line_of(lines, org_a) == f"Org A ({org_a.id}): deleted 0; keeping {kept} of running flow executions"
        assert lines[-1] == "Total: deleted 0 task outputs in 0 organizations."


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED, Status.STALE, Status.DELETED])
def test_outputs_of_a_finished_flow_execution_go(org_a, make_flow, make_output, status):
    flow = make_flow(org_a, status=Status.COMPLETED if status == Status.DELETED else status)
    old = aged(make_output(flow), timedelta(days=60))
    if status == Status.DELETED:
        flow_execution_delete(flow_execution=flow, actor="test")
    newest = make_output(make_flow(org_a))

    purge("--older-than", "30d", "--execute")

    assert remaining() == {newest.pk}
    assert not TaskOutput.objects.filter(pk=old.pk).exists()


def test_an_old_output_written_within_the_live_grace_period_waits_for_the_next_run(org_a, done_a, make_output):
    output = aged(make_output(done_a), timedelta(days=60))
    task_output_delete(task_output=output, actor="test")  # written now
    make_output(done_a)

    lines = purge("--older-than", "30d", "--execute", "--include-deleted-only")

    assert TaskOutput.objects.filter(pk=output.pk).exists()
    assert lines[1:] == [
        f"Org A ({org_a.id}): deleted 0; keeping 1 still needed by live cursors (a later run takes them)",
        "Total: deleted 0 task outputs in 0 organizations.",
    ]
    written = timezone.now() - timedelta(seconds=settings.LIVE_CURSOR_GRACE_SECONDS + 1)
    TaskOutput.objects.filter(pk=output.pk).update(updated_at=written)

    purge("--older-than", "30d", "--execute", "--include-deleted-only")

    assert not TaskOutput.objects.filter(pk=output.pk).exists()


def test_the_newest_write_stays_on_sqlite_where_the_next_write_is_numbered_from_it(org_a, done_a, make_output):
    older = aged(make_output(done_a), timedelta(days=60))
    newest = aged(make_output(done_a), timedelta(days=60))

    lines = purge("--older-than", "30d", "--execute")

    if connection.vendor == "sqlite":  # MAX(write_txid) + 1: deleting it would number a write again
        assert remaining() == {newest.pk}
        assert line_of([line for line in lines if "batch" not in line], org_a) == (
            f"Org A ({org_a.id}): deleted 1; keeping 1 still needed by live cursors (a later run takes them)"
        )
        make_output(done_a)
        purge("--older-than", "30d", "--execute")
        assert newest.pk not in remaining()
    else:  # real transaction ids, never reused
        assert remaining() == set()
    assert not TaskOutput.objects.filter(pk=older.pk).exists()


def test_the_task_execution_an_output_names_stays(org_a, done_a, make_output):
    task = TaskExecution.objects.create(organization=org_a, flow_execution=done_a, task_name="extract")
    output = aged(make_output(done_a, task_execution_id=task.id), timedelta(days=60))
    make_output(done_a)

    purge("--older-than", "30d", "--execute")

    assert not TaskOutput.objects.filter(pk=output.pk).exists()
    assert TaskExecution.objects.filter(pk=task.pk).exists()
    assert FlowExecution.objects.filter(pk=done_a.pk).exists()


# --- Options ---------------------------------------------------------------------------------


def test_include_deleted_only_deletes_only_soft_deleted_old_ones(done_a, make_output, org_a):
    old_deleted = make_output(done_a)
    task_output_delete(task_output=old_deleted, actor="test")
    aged(old_deleted, timedelta(days=60))
    old_live = aged(make_output(done_a, status=Status.COMPLETED), timedelta(days=60))
    old_stale = aged(make_output(done_a, status=Status.STALE), timedelta(days=60))
    young_deleted = make_output(done_a)
    task_output_delete(task_output=young_deleted, actor="test")
    aged(young_deleted, NOW_ISH)

    dry = purge("--older-than", "30d", "--include-deleted-only")
    lines = purge("--older-than", "30d", "--include-deleted-only", "--execute")

    assert "soft-deleted (status deleted)" in dry[0] and "soft-deleted (status deleted)" in lines[0]
    assert line_of(dry, org_a) == f"Org A ({org_a.id}): would delete 1"
    assert remaining() == {old_live.pk, old_stale.pk, young_deleted.pk}


def test_the_organization_option_limits_the_purge(tenants, org_a, org_b):
    old, young = tenants
    of_b = set(TaskOutput.objects.filter(organization=org_b, pk__in=old).values_list("pk", flat=True))

    dry = purge("--older-than", "30d", "--organization", str(org_b.id))
    lines = purge("--older-than", "30d", "--organization", str(org_b.id), "--execute")

    assert dry[1:] == [
        f"Org B ({org_b.id}): would delete 2",
        "Total: would delete 2 task outputs in 1 organization.",
    ]
    assert lines[-1] == "Total: deleted 2 task outputs in 1 organization."
    assert remaining() == young | (old - of_b)
    purge("--older-than", "30d", "--organization", "Org A", "--execute")  # a name works too
    assert remaining() == young


def test_an_organization_with_nothing_to_delete_is_still_reported_when_named(org_a):
    assert purge("--older-than", "30d", "--organization", str(org_a.id))[1:] == [
        f"Org A ({org_a.id}): would delete 0",
        "Total: would delete 0 task outputs in 0 organizations.",
    ]


def test_several_batches_delete_everything_each_in_its_own_transaction_and_are_logged(
    done_a, done_b, make_output, org_a, org_b, monkeypatch, caplog
):
    old = {aged(make_output(done_a, task_name=f"a{i}"), timedelta(days=60)).pk for i in range(7)}
    old |= {aged(make_output(done_b, task_name=f"b{i}"), timedelta(days=60)).pk for i in range(2)}
    newest = make_output(done_a)
    scopes = []
    real_scope = retention.tenant_scope

    def spy(organization_ids, **kwargs):
        scopes.append(list(organization_ids))
        return real_scope(organization_ids, **kwargs)

    monkeypatch.setattr(retention, "tenant_scope", spy)

    with caplog.at_level(logging.INFO, logger="superai_flow.retention"):
        lines = purge("--older-than", "30d", "--execute", "--batch-size", "3")

    assert remaining() == {newest.pk}
    assert [line for line in lines if line.startswith("Org A")] == [
        f"Org A ({org_a.id}): batch 1: deleted 3 (3 of 7)",
        f"Org A ({org_a.id}): batch 2: deleted 3 (6 of 7)",
        f"Org A ({org_a.id}): batch 3: deleted 1 (7 of 7)",
        f"Org A ({org_a.id}): deleted 7",
    ]
    # One transaction per batch, each scoped to its organization; a short batch is the last.
    assert scopes == [[org_a.id]] * 3 + [[org_b.id]]
    batches = [r for r in caplog.records if r.name == "superai_flow.retention" and r.msg.startswith("Purged ")]
    assert [r.levelno for r in batches] == [logging.INFO] * 4
    assert [r.args[0] for r in batches] == [3, 3, 1, 2]
    assert all(str(org_a.id) in r.getMessage() for r in batches[:3])
    assert "done: 7 task outputs deleted in 3 batches" in caplog.text


# --- Refused ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "30",
        "d",
        "0d",
        "0m",
        "-5d",
        "+5d",
        "30s",
        "1.5d",
        "30 d",
        " 30d",
        "30D",
        "30days",
        "",
        "9999999999d",
        "999999999w",
    ],
)
def test_an_older_than_that_is_no_positive_duration_is_refused(value, db):
    with pytest.raises(CommandError, match="--older-than: "):
        purge(f"--older-than={value}")


def test_older_than_is_required(db):
    with pytest.raises(CommandError, match="--older-than"):
        purge()


@pytest.mark.parametrize("value", ["0", "-1", "10001"])
def test_a_batch_size_out_of_range_is_refused(value, db):
    with pytest.raises(CommandError, match="--batch-size must be 1 to 10000"):
        purge("--older-than", "30d", "--batch-size", value)


@pytest.mark.parametrize("value", [str(uuid.uuid4()), "No such org"])
def test_an_unknown_organization_is_refused_and_nothing_is_deleted(tenants, value):
    before = remaining()

    with pytest.raises(CommandError, match="No organization has the id or name"):
        purge("--older-than", "30d", "--organization", value, "--execute")

    assert remaining() == before


# --- Under row-level security ---------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_under_row_level_security_the_plan_bypasses_with_a_reason_and_batches_see_one_organization(
    tenants, org_a, org_b, as_runtime_role, caplog
):
    _, young = tenants

    with caplog.at_level(logging.INFO, logger="superai_flow.audit"):
        dry = purge("--older-than", "30d")
        lines = purge("--older-than", "30d", "--execute", "--batch-size", "2")

    assert dry[-1] == "Total: would delete 5 task outputs in 2 organizations."
    assert lines[-1] == "Total: deleted 5 task outputs in 2 organizations."
    audit = [r.getMessage() for r in caplog.records if r.name == "superai_flow.audit"]
    assert audit == ["Row-level security bypassed: manage.py purge_task_outputs"] * 2  # the plans only
    with retention.system_scope("test: count what is left"):
        assert remaining() == young
