"""POST/GET /api/v1/flow-executions and GET /api/v1/flow-executions/{id}."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution
from tests.helpers import detail_codes, error_of

URL = "/api/v1/flow-executions"
FIELDS = ["id", "organization_id", "flow_name", "flow_version", "status", "input", "modified_by", "started_at",
          "completed_at", "created_at", "updated_at"]  # fmt: skip


def body_for(organization, **fields):
    return {"organization_id": str(organization.id), "flow_name": "document-ingest", **fields}


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# --- Create -------------------------------------------------------------------------------------


def test_create_answers_201_with_the_record_and_location(client_a, org_a):
    response = client_a.post(URL, body_for(org_a, flow_version=4, input={"doc": "s3://x"}, status="running"))

    assert response.status_code == 201
    data = response.json()
    assert list(data) == FIELDS
    assert data["flow_version"] == 4 and data["input"] == {"doc": "s3://x"} and data["status"] == "running"
    assert response["Location"] == f"/api/v1/flow-executions/{data['id']}"
    assert FlowExecution.objects.get().organization_id == org_a.id


def test_create_applies_defaults(client_a, org_a):
    data = client_a.post(URL + "/", body_for(org_a)).json()

    assert (data["flow_version"], data["status"], data["input"], data["modified_by"]) == (1, "queued", None, "system")


@pytest.mark.parametrize("version", [1, 2**31 - 1])
def test_create_accepts_flow_versions_in_range(client_a, org_a, version):
    assert client_a.post(URL, body_for(org_a, flow_version=version)).status_code == 201


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("flow_name", None, "null"),
        ("flow_name", "", "blank"),
        ("flow_name", " ", "blank"),
        ("flow_name", "x" * 201, "max_length"),
        ("flow_name", 3, "invalid"),
        ("flow_name", "a\x00", "invalid_text"),
        ("flow_version", 0, "min_value"),
        ("flow_version", 2**31, "max_value"),
        ("flow_version", "1", "invalid"),
        ("flow_version", 1.5, "invalid"),
        ("flow_version", True, "invalid"),
        ("status", "deleted", "invalid_choice"),
        ("status", "nope", "invalid_choice"),
        ("modified_by", "x" * 256, "max_length"),
        ("organization_id", 5, "invalid"),
        ("id", "nope", "invalid"),
        ("input", {"k": "\x00"}, "invalid_text"),
        ("created_at", "2026-01-01T00:00:00Z", "unknown_field"),
        ("flow", "x", "unknown_field"),
    ],
)
def test_create_rejects_bad_fields(client_a, org_a, field, value, code):
    response = client_a.post(URL, body_for(org_a, **{field: value}))

    error_of(response, 422, "validation_error")
    assert detail_codes(response) in ({field: code}, {f"{field}.k": code})
    assert FlowExecution.objects.count() == 0


@pytest.mark.parametrize("field", ["organization_id", "flow_name"])
def test_create_requires_organization_and_flow_name(client_a, org_a, field):
    body = body_for(org_a)
    del body[field]

    assert detail_codes(client_a.post(URL, body)) == {field: "required"}


def test_create_for_another_organization_is_403(client_a, org_b):
    error_of(client_a.post(URL, body_for(org_b)), 403, "permission_denied")
    assert FlowExecution.objects.count() == 0


def test_create_rejects_a_body_that_is_not_an_object(client_a):
    error_of(client_a.generic("POST", URL, "[]", content_type="application/json"), 400, "bad_request")


def test_create_with_a_client_id_is_idempotent(client_a, org_a):
    flow_id = str(uuid.uuid4())
    first = client_a.post(URL, body_for(org_a, id=flow_id, input={"a": 1}))
    retry = client_a.post(URL, body_for(org_a, id=flow_id, input={"a": 1.0}, flow_version=1))
    conflict = client_a.post(URL, body_for(org_a, id=flow_id, input={"a": 2}))

    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json() == first.json()
    error_of(conflict, 409, "conflict")
    assert detail_codes(conflict) == {"input": "conflict"}
    assert FlowExecution.objects.count() == 1


def test_create_with_an_id_of_another_organization_is_409(client_a, client_b, org_a, org_b):
    flow_id = str(uuid.uuid4())
    client_b.post(URL, body_for(org_b, id=flow_id))

    error_of(client_a.post(URL, body_for(org_a, id=flow_id)), 409, "conflict")


# --- List ---------------------------------------------------------------------------------------


def test_list_shows_the_callers_flow_executions_newest_first(client_a, org_a, org_b, make_flow):
    older = make_flow(org_a)
    newer = make_flow(org_a)
    make_flow(org_b)
    make_flow(org_a, status=Status.DELETED)

    assert ids(client_a.get(URL)) == [str(newer.id), str(older.id)]


def test_list_filters_by_status_name_and_time(client_a, org_a, make_flow):
    now = timezone.now()
    running = make_flow(org_a, flow_name="a", status=Status.RUNNING)
    failed = make_flow(org_a, flow_name="b", status=Status.FAILED)
    FlowExecution.objects.filter(pk=running.pk).update(created_at=now - timedelta(hours=2))

    assert ids(client_a.get(URL, {"status": "running"})) == [str(running.id)]
    assert ids(client_a.get(URL, {"status": "running,failed"})) == [str(failed.id), str(running.id)]
    assert ids(client_a.get(URL, {"flow_name": "b"})) == [str(failed.id)]
    assert ids(client_a.get(URL, {"flow_name": "B"})) == []
    hour_ago = (now - timedelta(hours=1)).isoformat()
    assert ids(client_a.get(URL, {"created_after": hour_ago})) == [str(failed.id)]
    assert ids(client_a.get(URL, {"created_before": hour_ago})) == [str(running.id)]


def test_list_paginates_with_cursors(client_a, org_a, make_flow):
    made = {str(make_flow(org_a).id) for _ in range(5)}
    seen: list[str] = []
    url = f"{URL}?page_size=2"
    while url:
        page = client_a.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]

    assert len(seen) == 5 and set(seen) == made


@pytest.mark.parametrize(
    ("query", "field"),
    [({"task_name": "x"}, "task_name"), ({"status": "x"}, "status"), ({"page_size": "0"}, "page_size")],
)
def test_list_rejects_unknown_and_malformed_parameters(client_a, query, field):
    response = client_a.get(URL, query)

    error_of(response, 422, "validation_error")
    assert set(detail_codes(response)) == {field}


# --- Read one -----------------------------------------------------------------------------------


def test_get_one_counts_task_outputs_by_status_without_deleted(client_a, flow_a, make_output):
    for status in [Status.COMPLETED, Status.COMPLETED, Status.FAILED, Status.DELETED]:
        make_output(flow_a, status=status)

    response = client_a.get(f"{URL}/{flow_a.id}")

    assert response.status_code == 200
    data = response.json()
    assert list(data) == [*FIELDS, "task_output_count", "task_output_counts"]
    assert data["task_output_count"] == 3
    assert data["task_output_counts"] == {
        "queued": 0,
        "running": 0,
        "in_progress": 0,
        "completed": 2,
        "failed": 1,
        "stale": 0,
    }


def test_get_one_of_another_tenant_or_deleted_or_missing_is_404(client_a, flow_b, make_flow, org_a):
    deleted = make_flow(org_a, status=Status.DELETED)

    for flow_id in (flow_b.id, deleted.id, uuid.uuid4(), "nope"):
        error_of(client_a.get(f"{URL}/{flow_id}/"), 404, "not_found")
