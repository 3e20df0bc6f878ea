"""The status lifecycle, table-driven, at the API of flow executions, task executions and task outputs."""

from __future__ import annotations

import itertools
import threading

import pytest
from django.db import connection

from flow_executions.lifecycle import Status, is_allowed
from flow_executions.models import FlowExecution, TaskExecution
from superai_flow.organizations.models import APIKey
from tests.helpers import bearer_client, detail_codes, error_of

STATUSES = Status.values
LIVE_STATUSES = [s for s in STATUSES if s != Status.DELETED]
# The contract's rules written out by hand, not derived from the code under test.
ALLOWED = {
    "queued": {"queued", "running", "in_progress", "completed", "failed", "deleted"},
    "running": {"running", "in_progress", "completed", "failed", "deleted"},
    "in_progress": {"in_progress", "completed", "failed", "deleted"},
    "completed": {"completed", "failed", "deleted", "stale"},
    "failed": {"failed", "deleted", "stale"},
    "stale": {"stale", "deleted"},
    "deleted": {"deleted"},
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(STATUSES, STATUSES)))
def test_the_rule_set_matches_the_contract(current, target):
    assert is_allowed(current, target) == (target in ALLOWED[current])


def expect(response, current: str, target: str) -> None:
    if target in ALLOWED[current]:
        assert response.status_code in (200, 204), response.content
    else:
        body = error_of(response, 409, "invalid_transition")
        assert current in body["error"]["message"] and target in body["error"]["message"]
        assert detail_codes(response) == {"status": "invalid_transition"}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(LIVE_STATUSES, STATUSES)))
def test_flow_execution_transitions(client_a, org_a, make_flow, current, target):
    flow = make_flow(org_a)
    FlowExecution.objects.filter(pk=flow.pk).update(status=current)

    response = client_a.patch(f"/api/v1/flow-executions/{flow.id}", {"status": target})

    expect(response, current, target)
    flow.refresh_from_db()
    assert flow.status == (target if target in ALLOWED[current] else current)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(LIVE_STATUSES, STATUSES)))
def test_task_execution_transitions(client_a, flow_a, current, target):
    task = TaskExecution.objects.create(organization=flow_a.organization, flow_execution=flow_a, task_name="t")
    TaskExecution.objects.filter(pk=task.pk).update(status=current)

    response = client_a.patch(f"/api/v1/task-executions/{task.id}", {"status": target})

    expect(response, current, target)
    task.refresh_from_db()
    assert task.status == (target if target in ALLOWED[current] else current)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(LIVE_STATUSES, STATUSES)))
def test_task_outputs_may_only_become_stale_or_deleted(client_a, flow_a, make_output, current, target):
    output = make_output(flow_a, status=current)

    response = client_a.patch(f"/api/v1/task-outputs/{output.id}", {"status": target})

    allowed = target == current or (target in {"stale", "deleted"} and target in ALLOWED[current])
    if allowed:
        assert response.status_code == 200, response.content
    else:
        error_of(response, 409, "invalid_transition")
    output.refresh_from_db()
    assert output.status == (target if allowed else current)


# --- Timestamps and modified_by -----------------------------------------------------------------


def test_start_and_completion_times_are_stamped_once(client_a, org_a, make_flow):
    flow = make_flow(org_a)
    url = f"/api/v1/flow-executions/{flow.id}"
    assert client_a.get(url).json()["started_at"] is None

    running = client_a.patch(url, {"status": "running"}).json()
    completed = client_a.patch(url, {"status": "completed"}).json()
    failed = client_a.patch(url, {"status": "failed"}).json()

    assert running["started_at"] and running["completed_at"] is None
    assert completed["started_at"] == running["started_at"] and completed["completed_at"]
    assert failed["completed_at"] == completed["completed_at"]


def test_a_flow_created_running_has_started(client_a, org_a):
    data = client_a.post("/api/v1/flow-executions", {"organization_id": str(org_a.id), "flow_name": "f",
                                                     "status": "running"}).json()  # fmt: skip

    assert data["started_at"] and data["completed_at"] is None


def test_changes_record_who_made_them(client_a, org_a, make_flow):
    flow = make_flow(org_a)
    url = f"/api/v1/flow-executions/{flow.id}"

    by_key = client_a.patch(url, {"status": "running"}).json()
    named = client_a.patch(url, {"status": "completed", "modified_by": "scheduler"}).json()

    assert by_key["modified_by"] == f"api_key:{APIKey.objects.get(organization=org_a).id}"
    assert named["modified_by"] == "scheduler"


def test_the_same_status_again_changes_nothing(client_a, org_a, make_flow):
    flow = make_flow(org_a, status=Status.RUNNING)
    before = client_a.get(f"/api/v1/flow-executions/{flow.id}").json()

    after = client_a.patch(f"/api/v1/flow-executions/{flow.id}", {"status": "running"})

    assert after.status_code == 200
    assert after.json()["updated_at"] == before["updated_at"]
    assert after.json()["modified_by"] == "system"


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"status": "done"}, "status", "invalid_choice"),
        ({"status": None}, "status", "null"),
        ({"modified_by": 3}, "modified_by", "invalid"),
        ({"flow_name": "x"}, "flow_name", "unknown_field"),
    ],
)
def test_a_malformed_change_is_422_and_changes_nothing(client_a, org_a, make_flow, body, field, code):
    flow = make_flow(org_a)

    response = client_a.patch(f"/api/v1/flow-executions/{flow.id}", body)

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {field: code}
    flow.refresh_from_db()
    assert flow.status == Status.QUEUED


# --- Races --------------------------------------------------------------------------------------


def race(key: str, url: str, targets: tuple[str, ...]) -> dict[str, int]:
    """PATCH `url` to each target status at the same moment, from as many threads; their status codes."""
    barrier = threading.Barrier(len(targets))
    results: dict[str, int] = {}

    def patch(target: str) -> None:
        client = bearer_client(key)
        barrier.wait()
        try:
            results[target] = client.patch(url, {"status": target}).status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=patch, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_changes_cannot_both_apply_from_the_same_old_status(org_a, key_a, make_flow):
    """From `running`, `completed` and `in_progress` are both allowed, but not one after the other
    (completed -> in_progress goes backwards): whichever comes second must see the first."""
    flow = make_flow(org_a)
    url = f"/api/v1/flow-executions/{flow.id}"
    for _ in range(15):
        FlowExecution.objects.filter(pk=flow.pk).update(status=Status.RUNNING, completed_at=None)

        results = race(key_a, url, ("completed", "in_progress"))

        final = FlowExecution.objects.get(pk=flow.pk).status
        if results == {"completed": 200, "in_progress": 200}:
            assert final == Status.COMPLETED, "in_progress was applied after completed"
        else:
            assert results == {"completed": 200, "in_progress": 409} and final == Status.COMPLETED
