"""Live cursors: recorded with every write, given out by lists, honoured by `?after=` and resumes."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from task_outputs import live
from task_outputs.models import TaskOutput
from task_outputs.services import task_output_create
from tests.helpers import bearer_client, detail_codes, error_of

URL = "/api/v1/task-outputs"


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["task_name"] for row in response.json()["results"]]


@pytest.mark.parametrize("horizon", [0, 1, 987_654_321, 2**63 - 1])
def test_a_cursor_round_trips(horizon):
    assert live.decode_cursor(live.encode_cursor(horizon)) == horizon


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "bGl2ZTo=", "bGl2ZTotMQ", 12, None, "x" * 100, "bGl2ZTox\x00", live.encode_cursor(2**63)],
)
def test_anything_else_is_not_a_cursor(token):
    with pytest.raises(live.InvalidCursor):
        live.decode_cursor(token)


@pytest.mark.django_db(transaction=True)
def test_each_write_records_where_it_stands(flow_a, make_output):
    first = make_output(flow_a)
    second = make_output(flow_a)

    for output in (first, second):
        stored = TaskOutput.objects.get(pk=output.pk)
        assert 0 < stored.cursor_horizon <= stored.write_horizon <= stored.write_txid
    assert second.write_txid > first.write_txid
    # A later write's message reaches back to the earlier one (within LIVE_CURSOR_GRACE_SECONDS).
    assert second.cursor_horizon <= first.write_txid


@pytest.mark.django_db(transaction=True)
def test_lists_give_a_live_cursor_that_stays_the_same_across_pages(client_a, flow_a, make_output):
    for n in range(3):
        make_output(flow_a, task_name=f"t{n}")

    first = client_a.get(URL, {"page_size": 2})
    make_output(flow_a, task_name="meanwhile")
    second = client_a.get(first.json()["next"])

    assert live.decode_cursor(first["X-Live-Cursor"]) >= 0
    assert second["X-Live-Cursor"] == first["X-Live-Cursor"]


@pytest.mark.django_db(transaction=True)
def test_polling_after_a_cursor_returns_later_writes_oldest_first(client_a, flow_a, make_output):
    make_output(flow_a, task_name="before")
    cursor = client_a.get(URL)["X-Live-Cursor"]
    for name in ("a", "b", "c"):
        make_output(flow_a, task_name=name)

    assert names(client_a.get(URL, {"after": cursor})) == ["a", "b", "c"]
    assert names(client_a.get(URL, {"after": cursor, "task_name": "b"})) == ["b"]
    first_page = client_a.get(URL, {"after": cursor, "page_size": 2})
    assert names(first_page) == ["a", "b"]
    assert names(client_a.get(first_page.json()["next"])) == ["c"]


def test_after_rejects_what_is_not_a_live_cursor(client_a):
    response = client_a.get(URL, {"after": "MTIz"})

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {"after": "invalid"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_row_that_commits_after_a_later_row_is_not_skipped(flow_a, key_a, settings):
    """Row A's transaction starts first and commits last: a reader that saw B must still get A."""
    settings.LIVE_CURSOR_GRACE_SECONDS = 0  # only the transaction horizon protects A here
    client = bearer_client(key_a)
    written, commit = threading.Event(), threading.Event()

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                task_output_create(
                    organization_id=flow_a.organization_id, flow_execution_id=flow_a.id, task_name="A", summary={}
                )
                written.set()
                commit.wait(timeout=10)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert written.wait(timeout=10)
    task_output_create(organization_id=flow_a.organization_id, flow_execution_id=flow_a.id, task_name="B", summary={})

    seen = client.get(URL)
    assert names(seen) == ["B"]
    commit.set()
    thread.join()

    assert "A" in names(client.get(URL, {"after": seen["X-Live-Cursor"]}))
    b_cursor = live.encode_cursor(TaskOutput.objects.get(task_name="B").cursor_horizon)
    assert "A" in names(client.get(URL, {"after": b_cursor}))
