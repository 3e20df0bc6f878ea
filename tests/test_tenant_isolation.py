"""Tenant isolation in both directions: another organization's records answer exactly like missing ones."""

from __future__ import annotations

import uuid

import pytest

from flow_executions.models import TaskExecution
from tests.helpers import error_of

OUTPUTS = "/api/v1/task-outputs"
FLOWS = "/api/v1/flow-executions"


@pytest.fixture(params=["a-looks-at-b", "b-looks-at-a"])
def tenants(request, client_a, client_b, flow_a, flow_b, make_output):
    """(viewer client, viewer's flow, owner's flow, owner's output) in each direction."""
    output_a, output_b = make_output(flow_a), make_output(flow_b)
    if request.param == "a-looks-at-b":
        return client_a, flow_a, flow_b, output_b
    return client_b, flow_b, flow_a, output_a


def test_lists_never_show_the_other_tenants_records(tenants):
    viewer, own_flow, other_flow, _ = tenants

    outputs = viewer.get(OUTPUTS).json()["results"]
    flows = viewer.get(FLOWS).json()["results"]

    assert {row["organization_id"] for row in outputs + flows} == {str(own_flow.organization_id)}
    assert viewer.get(OUTPUTS, {"flow_execution_id": str(other_flow.id)}).json()["results"] == []
    assert viewer.get(OUTPUTS, {"organization_id": str(other_flow.organization_id)}).json()["results"] == []


def test_reading_the_other_tenants_records_is_the_same_404_as_a_missing_one(tenants):
    viewer, _, other_flow, other_output = tenants

    for path in (f"{OUTPUTS}/{other_output.id}", f"{FLOWS}/{other_flow.id}"):
        foreign = error_of(viewer.get(path), 404, "not_found")
        missing = error_of(viewer.get(path.rsplit("/", 1)[0] + f"/{uuid.uuid4()}"), 404, "not_found")
        assert foreign["error"] == missing["error"]


def test_writing_into_the_other_tenants_flow_is_refused(tenants):
    viewer, own_flow, other_flow, _ = tenants
    body = {"flow_execution_id": str(other_flow.id), "task_name": "t", "summary": {}}

    as_other = viewer.post(OUTPUTS, {**body, "organization_id": str(other_flow.organization_id)})
    as_self = viewer.post(OUTPUTS, {**body, "organization_id": str(own_flow.organization_id)})
    missing = viewer.post(
        OUTPUTS, {**body, "organization_id": str(own_flow.organization_id), "flow_execution_id": str(uuid.uuid4())}
    )

    error_of(as_other, 403, "permission_denied")
    assert error_of(as_self, 404, "not_found")["error"] == error_of(missing, 404, "not_found")["error"]
    assert other_flow.task_outputs.count() == 1


def test_creating_a_flow_execution_for_the_other_tenant_is_403(tenants):
    viewer, _, other_flow, _ = tenants

    response = viewer.post(FLOWS, {"organization_id": str(other_flow.organization_id), "flow_name": "x"})

    error_of(response, 403, "permission_denied")


def test_reusing_the_other_tenants_id_conflicts_without_revealing_or_changing_it(tenants):
    viewer, own_flow, _, other_output = tenants
    body = {
        "id": str(other_output.id),
        "organization_id": str(own_flow.organization_id),
        "flow_execution_id": str(own_flow.id),
        "task_name": other_output.task_name,
        "summary": other_output.summary,
    }

    body_of_409 = error_of(viewer.post(OUTPUTS, body), 409, "conflict")

    assert body_of_409["error"]["details"] == []
    other_output.refresh_from_db()
    assert other_output.organization_id != own_flow.organization_id


def test_changing_or_deleting_the_other_tenants_records_is_404_and_changes_nothing(tenants):
    viewer, _, other_flow, other_output = tenants
    task = TaskExecution.objects.create(
        organization_id=other_flow.organization_id, flow_execution=other_flow, task_name="t"
    )
    targets = {
        f"{FLOWS}/{other_flow.id}": {"status": "running"},
        f"{OUTPUTS}/{other_output.id}": {"status": "deleted"},
        f"/api/v1/task-executions/{task.id}": {"status": "running"},
    }
    for path, change in targets.items():
        error_of(viewer.patch(path, change), 404, "not_found")
        error_of(viewer.get(path), 404, "not_found")
    for path in (f"{FLOWS}/{other_flow.id}", f"{OUTPUTS}/{other_output.id}"):
        error_of(viewer.delete(path), 404, "not_found")
    assert viewer.get("/api/v1/task-executions").json()["results"] == []
    other_flow.refresh_from_db()
    other_output.refresh_from_db()
    task.refresh_from_db()
    assert (other_flow.status, other_output.status, task.status) == ("queued", "queued", "queued")


def test_starting_a_task_execution_for_the_other_tenant_is_403(tenants):
    viewer, _, other_flow, _ = tenants
    body = {"organization_id": str(other_flow.organization_id), "flow_execution_id": str(other_flow.id),
            "task_name": "t"}  # fmt: skip

    error_of(viewer.post("/api/v1/task-executions", body), 403, "permission_denied")
