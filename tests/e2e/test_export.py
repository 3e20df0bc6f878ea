"""Export (NDJSON and CSV: streamed, filtered, limited) and stats against a real daphne process."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from task_outputs.models import TaskOutput
from tests.helpers import error_of

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

URL = "/api/v1/task-outputs/export"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def api(daphne_server, key_a):
    with httpx.Client(base_url=daphne_server.url, headers={"Authorization": f"Bearer {key_a}"}, timeout=30) as client:
        yield client


def fill(flow, count: int, **fields) -> list[TaskOutput]:
    """`count` committed task outputs of `flow`, a second apart, oldest first."""
    summaries = fields.pop("summaries", None) or [{"n": i, "stats": {"rows": i % 7}} for i in range(count)]
    common = {"organization_id": flow.organization_id, "flow_execution": flow, "flow_version": flow.flow_version,
              "status": "completed", "output": {"text": "x" * 100}, **fields}  # fmt: skip
    return TaskOutput.objects.bulk_create(
        TaskOutput(
            **common,
            task_name=f"task-{i % 3}",
            summary=summaries[i],
            tags=["a", "b"] if i % 2 else [],
            created_at=T0 + timedelta(seconds=i),
        )
        for i in range(count)
    )


def test_ndjson_streams_every_matching_record_as_the_list_shows_it(api, flow_a, flow_b, make_output):
    rows = fill(flow_a, 1500)
    fill(flow_b, 20)  # another organization's: never exported
    listed = api.get("/api/v1/task-outputs", params={"flow_execution_id": str(flow_a.id), "page_size": 5}).json()

    with api.stream("GET", URL, params={"flow_execution_id": str(flow_a.id), "task_name": "task-1"}) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/x-ndjson"
        assert response.headers["Content-Disposition"].startswith('attachment; filename="task-outputs-')
        records = [json.loads(line) for line in response.iter_lines() if line]

    expected = [str(row.id) for row in reversed(rows) if row.task_name == "task-1"]  # newest first, as the list
    assert [record["id"] for record in records] == expected
    by_id = {record["id"]: record for record in records}
    assert all(by_id[r["id"]] == r for r in listed["results"] if r["id"] in by_id)
    everything = [json.loads(line) for line in api.get(URL).text.splitlines()]
    assert len(everything) == 1500 and {r["organization_id"] for r in everything} == {str(flow_a.organization_id)}


def test_ndjson_follows_the_ordering_and_fields(api, flow_a):
    fill(flow_a, 30, summaries=[{"n": (i * 7) % 30} for i in range(30)])

    text = api.get(URL, params={"ordering": "-summary.n", "fields": "summary.n,id"}).text
    records = [json.loads(line) for line in text.splitlines()]

    assert [record["summary"]["n"] for record in records] == list(range(29, -1, -1))
    assert all(list(record) == ["id", "summary"] for record in records)


def test_csv_has_the_record_columns_then_one_per_summary_path(api, flow_a):
    rows = fill(flow_a, 3, summaries=[{"n": 1, "stats": {"rows": 5}}, {"label": 'a, "quoted"\nline'}, {"n": 2.5}])

    response = api.get(URL, params={"format": "csv", "ordering": "created_at"})

    assert response.status_code == 200 and response.headers["Content-Type"] == "text/csv; charset=utf-8"
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0] == ["id", "flow_execution_id", "task_execution_id", "task_name", "status", "tags", "created_at",
                        "updated_at", "summary.n", "summary.stats.rows", "summary.label"]  # fmt: skip
    assert [line[0] for line in table[1:]] == [str(row.id) for row in rows]
    assert table[1][5] == "" and table[2][5] == "a|b"
    assert table[1][8:] == ["1", "5", ""]
    assert table[2][8:] == ["", "", 'a, "quoted"\nline']
    assert table[3][8:] == ["2.5", "", ""]
    assert table[1][6] == "2026-01-01T00:00:00Z"


def test_csv_columns_follow_fields(api, flow_a):
    fill(flow_a, 2)

    table = list(
        csv.reader(
            io.StringIO(api.get(URL, params={"format": "csv", "fields": "task_name,summary.stats.rows,id"}).text)
        )
    )

    assert table[0] == ["id", "task_name", "summary.stats.rows"]
    assert len(table) == 3


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"format": "xml"}, "format", "invalid"),
        ({"page_size": "10"}, "page_size", "unknown_parameter"),
        ({"cursor": "abc"}, "cursor", "unknown_parameter"),
        ({"fields": "bogus"}, "fields", "unknown_field"),
        ({"status": "nope"}, "status", "invalid_choice"),
    ],
)
def test_errors_before_the_first_byte_are_envelopes(api, flow_a, params, field, code):
    response = api.get(URL, params=params)

    body = error_of(response, 422, "validation_error")
    assert {d["field"]: d["code"] for d in body["error"]["details"]} == {field: code}


def test_an_export_is_a_snapshot_of_when_it_started(api, flow_a, make_output):
    fill(flow_a, 20000)  # megabytes: more than the queue and the sockets between the reader and this client hold

    with api.stream("GET", URL, params={"flow_execution_id": str(flow_a.id)}) as response:
        lines = response.iter_lines()
        first = json.loads(next(lines))
        for _ in range(20):  # written while the export streams: not in it
            make_output(flow_a, summary={"late": True})
        rest = [json.loads(line) for line in lines if line]

    assert len(rest) + 1 == 20000
    assert not any(record["summary"].get("late") for record in [first, *rest])


def test_exports_beyond_the_limit_wait_their_turn(daphne_server, key_a, flow_a):
    fill(flow_a, 20000)  # each export streams far more than the queue between its reader and the client holds
    headers = {"Authorization": f"Bearer {key_a}"}
    clients = [httpx.Client(base_url=daphne_server.url, headers=headers, timeout=30) for _ in range(3)]
    try:
        for _ in range(3):  # answered without a body: their slots come back at once
            assert clients[0].head(URL).status_code == 200
        held = [client.stream("GET", URL).__enter__() for client in clients[:2]]  # started, not read
        assert [response.status_code for response in held] == [200, 200]

        refused = clients[2].get(URL)
        error_of(refused, 429, "too_many_requests")
        assert refused.headers["Retry-After"] == "5"

        for response in held:
            response.close()  # the client leaves: its slot comes free
        deadline = time.monotonic() + 15
        while (status := clients[2].get(URL, params={"task_name": "task-0"}).status_code) == 429:
            assert time.monotonic() < deadline, "the slots of exports whose clients left did not come free"
            time.sleep(0.2)
        assert status == 200
    finally:
        for client in clients:
            client.close()


def test_stats_over_the_wire_count_only_the_callers_outputs(api, flow_a, flow_b):
    fill(flow_a, 30)
    fill(flow_b, 5)  # another organization's: row-level security and the filters leave it out

    body = api.get("/api/v1/task-outputs/stats", params={"group_by": "task_name", "metric": "summary.n"}).json()

    assert body["total"] == 30
    assert [(group["key"]["task_name"], group["count"]) for group in body["groups"]] == [
        ("task-0", 10), ("task-1", 10), ("task-2", 10)
    ]  # fmt: skip
    assert body["groups"][0]["metrics"]["summary.n"] == {
        "count": 10, "min": 0, "max": 27, "sum": 135, "avg": 13.5, "p50": 13.5, "p95": pytest.approx(25.65)
    }  # fmt: skip
