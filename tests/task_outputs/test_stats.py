"""GET /api/v1/task-outputs/stats: counts and summary statistics per group, on PostgreSQL and SQLite."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from task_outputs import stats
from tests.helpers import detail_codes, error_of

URL = "/api/v1/task-outputs/stats"
T0 = datetime(2026, 1, 1, 10, 15, tzinfo=UTC)


def percentile(numbers: list[float], fraction: float) -> float:
    """The reference: PostgreSQL's percentile_cont (linear interpolation between the closest ranks)."""
    ordered = sorted(numbers)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@pytest.fixture
def outputs(flow_a, make_output):
    """Pages of two tasks: extract has 1..20 and two outputs without a number, load has 100 and 300."""
    made = []
    for n in range(1, 21):
        status = "completed" if n % 4 else "failed"
        summary = {"pages": n, "stats": {"ms": n * 1.5}}
        tags = ["pdf"] if n % 2 else ["pdf", "ocr"]
        made.append(make_output(flow_a, task_name="extract", status=status, summary=summary, tags=tags,
                                created_at=T0 + timedelta(minutes=10 * n)))  # fmt: skip
    done = {"status": "completed"}
    made.append(make_output(flow_a, task_name="extract", summary={"pages": "many"}, created_at=T0, **done))
    made.append(make_output(flow_a, task_name="extract", summary="text only", created_at=T0, **done))
    made.append(make_output(flow_a, task_name="load", summary={"pages": 100}, tags=["csv"], created_at=T0, **done))
    made.append(
        make_output(flow_a, task_name="load", summary={"pages": 300}, created_at=T0 + timedelta(days=1), **done)
    )
    return made


def test_without_groups_one_group_counts_everything(client_a, outputs, flow_b, make_output):
    make_output(flow_b, summary={"pages": 10_000})  # another organization's: not counted

    body = client_a.get(URL, {"metric": "summary.pages"}).json()

    numbers = [*range(1, 21), 100, 300]
    assert body["total"] == 24
    assert body["groups"] == [{"key": {}, "count": 24, "metrics": {"summary.pages": {
        "count": 22, "min": 1, "max": 300, "sum": sum(numbers), "avg": pytest.approx(statistics.mean(numbers)),
        "p50": pytest.approx(percentile(numbers, 0.5)), "p95": pytest.approx(percentile(numbers, 0.95)),
    }}}]  # fmt: skip


def test_numbers_are_read_as_doubles_from_tiny_to_huge(client_a, flow_a, make_output):
    for value in (2**60, 1e200, 1e200, -1.5e-300, 0.25):  # 1e200 squared, as avg(float8) would, overflows
        make_output(flow_a, task_name="wide", summary={"value": value})

    body = client_a.get(URL, {"metric": "summary.value"}).json()

    stat = body["groups"][0]["metrics"]["summary.value"]
    assert stat["count"] == 5
    assert stat["min"] == -1.5e-300 and stat["max"] == 1e200
    assert stat["sum"] == pytest.approx(2e200) and stat["avg"] == pytest.approx(4e199)
    assert stat["p50"] == pytest.approx(2**60)
    assert isinstance(stat["max"], float)  # beyond 2**53 an integral double stays a float, not a made-up integer


@pytest.mark.postgres
def test_numbers_beyond_1e290_are_skipped_so_that_no_sum_overflows(client_a, flow_a, make_output):
    for value in (10**300, -(10**295), 1e300, {"nested": 10**400}, 7, -1.5e-300, 10**289 + 0.5):
        make_output(flow_a, task_name="huge", summary={"value": value, "deep": {"value": value}})

    body = client_a.get(URL, {"metric": ["summary.value", "summary.deep.value"]})

    assert body.status_code == 200, body.content
    for stat in body.json()["groups"][0]["metrics"].values():
        assert stat["count"] == 3  # 7, the tiny one, and 1e289 (its integer part has 290 digits)
        assert stat["min"] == -1.5e-300 and stat["max"] == pytest.approx(1e289)


@pytest.mark.postgres
def test_percentiles_held_in_memory_or_sorted_on_disk_give_the_same_answer(client_a, flow_a, make_output, monkeypatch):
    numbers = random.Random(12).choices([round(random.Random(n).uniform(-50, 500), 3) for n in range(60)], k=200)
    for n, value in enumerate(numbers):  # repeated values, fractions, negatives, and every fifth without a number
        summary = {"ms": value, "deep": {"rows": n % 7}} if n % 5 else {"ms": "slow"}
        make_output(flow_a, task_name=f"task-{n % 3}", summary=summary, tags=["a", "b"][: n % 3])
    queries = [
        {"metric": "summary.ms"},
        {"group_by": "task_name", "metric": ["summary.ms", "summary.deep.rows"]},
        {"group_by": "tag,task_name", "metric": "summary.ms"},
    ]

    def answers() -> tuple[list[dict], str]:
        with CaptureQueriesContext(connection) as captured:
            bodies = [client_a.get(URL, query).json() for query in queries]
        return bodies, " ".join(query["sql"] for query in captured.captured_queries)

    in_memory, in_memory_sql = answers()
    monkeypatch.setattr(stats, "MAX_NUMBERS_IN_MEMORY", 0)
    sorted_on_disk, sorted_sql = answers()

    assert "superai_number_stats" in in_memory_sql and "percentile_cont" not in in_memory_sql
    assert "percentile_cont" in sorted_sql and "superai_number_stats" not in sorted_sql
    assert in_memory == sorted_on_disk
    overall = in_memory[0]["groups"][0]["metrics"]["summary.ms"]
    with_numbers = [value for n, value in enumerate(numbers) if n % 5]
    assert overall["count"] == len(with_numbers) == 160
    assert overall["min"] == min(with_numbers) and overall["max"] == max(with_numbers)
    assert overall["sum"] == pytest.approx(sum(with_numbers))
    assert overall["p50"] == pytest.approx(percentile(with_numbers, 0.5))
    assert overall["p95"] == pytest.approx(percentile(with_numbers, 0.95))


def test_outputs_of_a_deleted_flow_execution_are_not_counted(client_a, flow_a, make_flow, org_a, make_output):
    gone = make_flow(org_a)
    for value in (1, 2):
        make_output(flow_a, summary={"pages": value})
        make_output(gone, summary={"pages": 1000})
    assert client_a.delete(f"/api/v1/flow-executions/{gone.id}").status_code == 204

    body = client_a.get(URL, {"metric": "summary.pages"}).json()

    assert body["total"] == 2
    assert body["groups"][0]["metrics"]["summary.pages"]["max"] == 2


def test_groups_by_task_and_status_with_two_metrics(client_a, outputs):
    body = client_a.get(
        URL, {"group_by": ["task_name", "status"], "metric": ["summary.pages", "summary.stats.ms"]}
    ).json()

    keys = [group["key"] for group in body["groups"]]
    assert keys == [{"task_name": "extract", "status": "completed"}, {"task_name": "extract", "status": "failed"},
                    {"task_name": "load", "status": "completed"}]  # fmt: skip
    failed = body["groups"][1]
    assert failed["count"] == 5
    assert failed["metrics"]["summary.pages"]["min"] == 4 and failed["metrics"]["summary.pages"]["max"] == 20
    assert failed["metrics"]["summary.stats.ms"]["avg"] == pytest.approx(
        statistics.mean([n * 1.5 for n in (4, 8, 12, 16, 20)])
    )
    completed = body["groups"][0]
    assert completed["count"] == 17 and completed["metrics"]["summary.pages"]["count"] == 15  # "many", text: no number
    load = body["groups"][2]["metrics"]["summary.stats.ms"]
    assert load == {"count": 0, "min": None, "max": None, "avg": None, "sum": None, "p50": None, "p95": None}


def test_groups_by_tag_count_an_output_under_each_of_its_tags(client_a, outputs):
    body = client_a.get(URL, {"group_by": "tag", "task_name": "extract"}).json()

    assert body["groups"] == [{"key": {"tag": "ocr"}, "count": 10}, {"key": {"tag": "pdf"}, "count": 20},
                              {"key": {"tag": None}, "count": 2}]  # fmt: skip
    assert body["total"] == 22


def test_groups_by_hour_and_day_are_utc_buckets(client_a, outputs):
    hours = client_a.get(URL, {"group_by": "hour", "task_name": "extract"}).json()["groups"]
    days = client_a.get(URL, {"group_by": "day"}).json()["groups"]

    assert hours[0] == {"key": {"hour": "2026-01-01T10:00:00Z"}, "count": 6}  # 10:15 twice, 10:25 ... 10:55
    assert [group["key"]["hour"] for group in hours][-1] == "2026-01-01T13:00:00Z"
    assert sum(group["count"] for group in hours) == 22
    assert days == [
        {"key": {"day": "2026-01-01T00:00:00Z"}, "count": 23},
        {"key": {"day": "2026-01-02T00:00:00Z"}, "count": 1},
    ]


def test_groups_by_flow_execution(client_a, outputs, flow_a, make_flow, org_a, make_output):
    other = make_flow(org_a)
    make_output(other, summary={})

    body = client_a.get(URL, {"group_by": "flow_execution_id"}).json()

    assert sorted((g["key"]["flow_execution_id"], g["count"]) for g in body["groups"]) == sorted(
        [(str(flow_a.id), 24), (str(other.id), 1)]
    )


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ({"group_by": "colour"}, "group_by", "invalid_choice"),
        ({"group_by": "task_name,status,day"}, "group_by", "too_many"),
        ({"metric": "pages"}, "metric", "invalid_path"),
        ({"metric": "summary."}, "metric", "invalid_path"),
        ({"metric": [f"summary.k{i}" for i in range(6)]}, "metric", "too_many"),
        ({"page_size": "5"}, "page_size", "unknown_parameter"),
        ({"status": "nope"}, "status", "invalid_choice"),
    ],
)
def test_bad_parameters_are_422s(client_a, query, field, code):
    response = client_a.get(URL, query)

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {field: code}


def test_more_than_a_thousand_groups_asks_for_a_narrower_query(client_a, flow_a, make_output):
    original = stats.MAX_GROUPS
    stats.MAX_GROUPS = 3
    try:
        for n in range(4):
            make_output(flow_a, task_name=f"task-{n}")
        response = client_a.get(URL, {"group_by": "task_name"})
    finally:
        stats.MAX_GROUPS = original

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {"group_by": "too_many_groups"}
