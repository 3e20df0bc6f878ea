"""POST/GET/PATCH /api/v1/task-executions."""

from __future__ import annotations

import uuid

import pytest

from flow_executions.lifecycle import Status
from flow_executions.models import TaskExecution
from tests.helpers import detail_codes, error_of

URL = "/api/v1/task-executions"
FIELDS = ["id", "flow_execution_id", "organization_id", "task_name", "status", "attempt", "retries", "input",
          "output", "error", "started_at", "finished_at", "duration_ms", "modified_by", "created_at",
          "updated_at"]  # fmt: skip


def body_for(flow, **fields):
    return {"flow_execution_id": str(flow.id), "organization_id": str(flow.organization_id), "task_name": "ocr",
            **fields}  # fmt: skip


def test_create_answers_201_with_the_record(client_a, flow_a):
    response = client_a.post(URL, body_for(flow_a, input={"page": 3}, attempt=2, status="running"))

    assert response.status_code == 201
    data = response.json()
    assert list(data) == FIELDS
    assert (data["task_name"], data["attempt"], data["retries"], data["status"]) == ("ocr", 2, 0, "running")
    assert data["input"] == {"page": 3} and data["started_at"] and data["finished_at"] is None
    assert response["Location"] == f"{URL}/{data['id']}"
    assert client_a.get(response["Location"] + "/").json() == data


def test_create_applies_defaults(client_a, flow_a):
    data = client_a.post(URL, body_for(flow_a)).json()

    assert (data["status"], data["attempt"], data["input"], data["modified_by"]) == ("queued", 1, None, "system")
    assert data["duration_ms"] is None


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("task_name", "", "blank"),
        ("task_name", 5, "invalid"),
        ("attempt", 0, "min_value"),
        ("attempt", "2", "invalid"),
        ("status", "deleted", "invalid_choice"),
        ("input", {"\x00": 1}, "invalid_text"),
        ("retries", 1, "unknown_field"),
        ("flow_execution_id", "x", "invalid"),
    ],
)
def test_create_rejects_bad_fields(client_a, flow_a, field, value, code):
    response = client_a.post(URL, body_for(flow_a, **{field: value}))

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {field: code}


def test_create_checks_the_organization_then_the_flow(client_a, flow_a, flow_b):
    error_of(client_a.post(URL, body_for(flow_b)), 403, "permission_denied")
    response = client_a.post(URL, body_for(flow_a, flow_execution_id=str(flow_b.id)))
    error_of(response, 404, "not_found")
    assert detail_codes(response) == {"flow_execution_id": "not_found"}


def test_create_with_a_client_id_is_idempotent(client_a, flow_a):
    task_id = str(uuid.uuid4())
    first = client_a.post(URL, body_for(flow_a, id=task_id, status="running"))
    retry = client_a.post(URL, body_for(flow_a, id=task_id, status="running"))
    conflict = client_a.post(URL, body_for(flow_a, id=task_id, attempt=2))

    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json() == first.json()
    error_of(conflict, 409, "conflict")
    assert set(detail_codes(conflict)) == {"attempt", "status"}


def test_list_filters(client_a, flow_a, make_flow, org_a):
    other_flow = make_flow(org_a)
    ocr = client_a.post(URL, body_for(flow_a, status="running")).json()
    client_a.post(URL, body_for(flow_a, task_name="fetch"))
    client_a.post(URL, body_for(other_flow))

    def ids(query):
        return [row["id"] for row in client_a.get(URL, query).json()["results"]]

    assert len(ids({})) == 3
    assert len(ids({"flow_execution_id": str(flow_a.id)})) == 2
    assert ids({"flow_execution_id": str(flow_a.id), "task_name": "ocr"}) == [ocr["id"]]
    assert ids({"status": "running"}) == [ocr["id"]]
    error_of(client_a.get(URL, {"tag": "x"}), 422, "validation_error")


def test_patch_records_progress_and_derives_the_duration(client_a, flow_a):
    task = client_a.post(URL, body_for(flow_a)).json()
    url = f"{URL}/{task['id']}"

    client_a.patch(url, {"status": "running", "started_at": "2026-01-01T10:00:00Z"})
    done = client_a.patch(
        url,
        {"status": "completed", "output": {"pages": 3}, "retries": 2, "finished_at": "2026-01-01T10:00:01.250Z"},
    ).json()

    assert done["status"] == "completed" and done["output"] == {"pages": 3} and done["retries"] == 2
    assert done["duration_ms"] == 1250
    assert done["modified_by"].startswith("api_key:")


def test_patch_records_errors(client_a, flow_a):
    task = client_a.post(URL, body_for(flow_a, status="running")).json()

    failed = client_a.patch(f"{URL}/{task['id']}", {"status": "failed", "error": {"type": "Timeout"}}).json()

    assert failed["error"] == {"type": "Timeout"} and failed["finished_at"] and failed["duration_ms"] >= 0


def test_patch_refuses_a_finish_before_the_start(client_a, flow_a):
    task = client_a.post(URL, body_for(flow_a)).json()
    url = f"{URL}/{task['id']}"
    client_a.patch(url, {"started_at": "2026-01-01T10:00:00Z"})

    response = client_a.patch(url, {"finished_at": "2026-01-01T09:00:00Z"})

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {"finished_at": "before_start"}
    assert TaskExecution.objects.get(pk=task["id"]).finished_at is None


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"retries": -1}, "retries", "min_value"),
        ({"started_at": "2026-01-01T10:00:00"}, "started_at", "naive"),
        ({"attempt": 3}, "attempt", "unknown_field"),
        ({"error": {"deep": "\x00"}}, "error.deep", "invalid_text"),
    ],
)
def test_patch_rejects_bad_fields(client_a, flow_a, body, field, code):
    task = client_a.post(URL, body_for(flow_a)).json()

    response = client_a.patch(f"{URL}/{task['id']}", body)

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {field: code}


def test_a_deleted_task_execution_disappears(client_a, flow_a):
    task = client_a.post(URL, body_for(flow_a)).json()
    url = f"{URL}/{task['id']}"

    assert client_a.patch(url, {"status": "deleted"}).status_code == 200

    error_of(client_a.get(url), 404, "not_found")
    error_of(client_a.patch(url, {"status": "running"}), 404, "not_found")
    assert client_a.get(URL).json()["results"] == []
    assert TaskExecution.objects.get(pk=task["id"]).status == Status.DELETED
    error_of(client_a.delete(url), 405, "method_not_allowed")
