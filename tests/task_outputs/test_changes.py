"""PATCH and DELETE of task outputs, and what soft deletion hides."""

from __future__ import annotations

import pytest

from flow_executions.lifecycle import Status
from task_outputs.models import TaskOutput
from tests.helpers import detail_codes, error_of

URL = "/api/v1/task-outputs"


def test_patch_marks_stale_retags_and_records_who(client_a, flow_a, make_output):
    output = make_output(flow_a, status=Status.COMPLETED, tags=["a"])
    before = TaskOutput.objects.get(pk=output.pk)

    data = client_a.patch(f"{URL}/{output.id}", {"status": "stale", "tags": ["b", "b", "c"]}).json()

    assert (data["status"], data["tags"]) == ("stale", ["b", "c"])
    assert data["modified_by"].startswith("api_key:")
    after = TaskOutput.objects.get(pk=output.pk)
    assert after.revision == before.revision + 1 and after.write_txid >= before.write_txid
    assert after.summary == before.summary and after.created_at == before.created_at


def test_patch_with_only_tags_or_modified_by_works(client_a, flow_a, make_output):
    output = make_output(flow_a)

    assert client_a.patch(f"{URL}/{output.id}/", {"tags": None}).json()["tags"] == []
    assert client_a.patch(f"{URL}/{output.id}", {"modified_by": "reviewer"}).json()["modified_by"] == "reviewer"


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"summary": {}}, "summary", "unknown_field"),
        ({"tags": ["x" * 101]}, "tags.0", "max_length"),
        ({"status": "gone"}, "status", "invalid_choice"),
    ],
)
def test_patch_rejects_bad_fields(client_a, flow_a, make_output, body, field, code):
    output = make_output(flow_a)

    response = client_a.patch(f"{URL}/{output.id}", body)

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {field: code}


def test_delete_is_soft_and_final(client_a, flow_a, make_output):
    output = make_output(flow_a)
    url = f"{URL}/{output.id}"

    response = client_a.delete(url)

    assert response.status_code == 204 and response.content == b""
    for attempt in (client_a.get(url), client_a.patch(url, {"tags": []}), client_a.delete(url)):
        error_of(attempt, 404, "not_found")
    assert client_a.get(URL).json()["results"] == []
    assert TaskOutput.objects.get(pk=output.pk).status == Status.DELETED  # kept for audit (and admin)


def test_a_deleted_flow_execution_hides_everything_under_it(client_a, flow_a, make_output):
    task = client_a.post(
        "/api/v1/task-executions",
        {"flow_execution_id": str(flow_a.id), "organization_id": str(flow_a.organization_id), "task_name": "t"},
    ).json()
    output = make_output(flow_a)

    assert client_a.delete(f"/api/v1/flow-executions/{flow_a.id}").status_code == 204

    hidden = [
        f"/api/v1/flow-executions/{flow_a.id}",
        f"/api/v1/task-executions/{task['id']}",
        f"{URL}/{output.id}",
    ]
    for path in hidden:
        error_of(client_a.get(path), 404, "not_found")
        error_of(client_a.patch(path, {"status": "deleted"}), 404, "not_found")
    for path in ("/api/v1/flow-executions", "/api/v1/task-executions", URL):
        assert client_a.get(path).json()["results"] == [], path
    assert client_a.get(URL, {"flow_execution_id": str(flow_a.id)}).json()["results"] == []
    body = {"flow_execution_id": str(flow_a.id), "organization_id": str(flow_a.organization_id), "task_name": "x",
            "summary": {}}  # fmt: skip
    error_of(client_a.post(URL, body), 404, "not_found")
    assert TaskOutput.objects.get(pk=output.pk).status == Status.QUEUED  # the output itself is untouched


def test_deleting_a_flow_execution_twice_is_404(client_a, flow_a):
    assert client_a.delete(f"/api/v1/flow-executions/{flow_a.id}/").status_code == 204
    error_of(client_a.delete(f"/api/v1/flow-executions/{flow_a.id}/"), 404, "not_found")
