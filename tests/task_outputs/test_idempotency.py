"""A client-chosen `id` makes POST /task-outputs idempotent: 200 on a same-payload retry, 409 otherwise."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection

from flow_executions.lifecycle import Status
from task_outputs.models import TaskOutput
from tests.helpers import bearer_client, detail_codes, error_of
from tests.task_outputs.test_create import URL, body_for


def test_a_retry_with_the_same_payload_answers_200_with_the_stored_record(client_a, flow_a):
    body = body_for(flow_a, id=str(uuid.uuid4()), tags=["a"])
    first = client_a.post(URL, body)
    retry = client_a.post(URL, body)

    assert first.status_code == 201
    assert retry.status_code == 200
    assert retry.json() == first.json()
    assert retry["Location"] == first["Location"]
    assert TaskOutput.objects.count() == 1


def test_a_retry_compares_payloads_as_stored(client_a, flow_a):
    output_id = str(uuid.uuid4())
    first = client_a.post(URL, body_for(flow_a, id=output_id, tags=["a", "a", "b"], summary={"n": 1}))
    # Same after defaults (status, modified_by, output), tag de-duplication and JSON equality (1 == 1.0).
    retry = client_a.post(
        URL,
        body_for(
            flow_a,
            id=output_id,
            tags=["a", "b"],
            summary={"n": 1.0},
            status="queued",
            modified_by="system",
            output=None,
            updated_at="2020-01-01T00:00:00Z",
        ),
    )

    assert first.status_code == 201
    assert retry.status_code == 200


def test_a_retry_without_created_at_matches_a_backfilled_record(client_a, flow_a):
    output_id = str(uuid.uuid4())
    client_a.post(URL, body_for(flow_a, id=output_id, created_at="2024-01-01T00:00:00Z"))

    assert client_a.post(URL, body_for(flow_a, id=output_id)).status_code == 200
    assert client_a.post(URL, body_for(flow_a, id=output_id, created_at="2024-01-01T01:00:00+01:00")).status_code == 200
    conflict = client_a.post(URL, body_for(flow_a, id=output_id, created_at="2024-01-02T00:00:00Z"))
    error_of(conflict, 409, "conflict")
    assert detail_codes(conflict) == {"created_at": "conflict"}


@pytest.mark.parametrize(
    "change",
    [
        {"task_name": "other"},
        {"summary": {"pages": 11, "word_count": 5000}},
        {"summary": {"pages": True, "word_count": 5000}},
        {"output": {"x": 1}},
        {"tags": ["other"]},
        {"status": "completed"},
        {"modified_by": "someone"},
    ],
)
def test_a_retry_with_a_different_payload_is_409(client_a, flow_a, change):
    output_id = str(uuid.uuid4())
    client_a.post(URL, body_for(flow_a, id=output_id, summary={"pages": 1, "word_count": 5000}, tags=[]))
    response = client_a.post(URL, body_for(flow_a, id=output_id, **change))

    error_of(response, 409, "conflict")
    assert set(detail_codes(response)) >= set(change)
    assert TaskOutput.objects.count() == 1


def test_a_retry_into_another_flow_execution_is_409(client_a, flow_a, make_flow):
    output_id = str(uuid.uuid4())
    client_a.post(URL, body_for(flow_a, id=output_id))
    other = make_flow(flow_a.organization, flow_version=3)
    response = client_a.post(URL, body_for(other, id=output_id))

    error_of(response, 409, "conflict")
    assert detail_codes(response) == {"flow_execution_id": "conflict"}


def test_an_id_used_by_another_organization_is_409_and_reveals_nothing(client_a, client_b, flow_a, flow_b):
    output_id = str(uuid.uuid4())
    assert client_b.post(URL, body_for(flow_b, id=output_id)).status_code == 201
    response = client_a.post(URL, body_for(flow_a, id=output_id))

    body = error_of(response, 409, "conflict")
    assert body["error"]["details"] == []
    assert TaskOutput.objects.filter(organization=flow_a.organization).count() == 0


def test_an_id_of_a_deleted_output_is_409(client_a, flow_a):
    output_id = str(uuid.uuid4())
    client_a.post(URL, body_for(flow_a, id=output_id))
    TaskOutput.objects.filter(pk=output_id).update(status=Status.DELETED)

    error_of(client_a.post(URL, body_for(flow_a, id=output_id)), 409, "conflict")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_leave_exactly_one_row(org_a, key_a, make_flow):
    flow = make_flow(org_a)
    body = body_for(flow, id=str(uuid.uuid4()), tags=["race"])
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def post() -> None:
        client = bearer_client(key_a)
        barrier.wait()
        try:
            statuses.append(client.post(URL, body).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200] * 7 + [201]
    assert TaskOutput.objects.filter(pk=body["id"]).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_with_different_payloads_store_one_and_refuse_the_rest(org_a, key_a, make_flow):
    flow = make_flow(org_a)
    output_id = str(uuid.uuid4())
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def post(n: int) -> None:
        client = bearer_client(key_a)
        barrier.wait()
        try:
            statuses.append(client.post(URL, body_for(flow, id=output_id, summary={"n": n})).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [201] + [409] * 5
    assert TaskOutput.objects.filter(pk=output_id).count() == 1
