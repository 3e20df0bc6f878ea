"""GET /api/v1/task-outputs (every filter, ordering, pagination) and GET /api/v1/task-outputs/{id}."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flow_executions.lifecycle import Status
from flow_executions.models import TaskExecution
from task_outputs.models import TaskOutput
from tests.helpers import detail_codes, error_of, list_query_plan

URL = "/api/v1/task-outputs"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def follow(client, url: str) -> list[str]:
    """Every id from `url` on, following `next` links."""
    seen: list[str] = []
    while url:
        page = client.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    return seen


@pytest.fixture
def outputs(flow_a, make_output):
    """Five outputs a minute apart, oldest first."""
    return [make_output(flow_a, task_name=f"task-{i}", created_at=T0 + timedelta(minutes=i)) for i in range(5)]


# --- Scope and basics ---------------------------------------------------------------------------


def test_list_is_newest_first_by_default(client_a, outputs):
    response = client_a.get(URL)

    assert ids(response) == [str(o.id) for o in reversed(outputs)]
    assert response.json()["next"] is None and response.json()["previous"] is None


def test_list_answers_with_and_without_trailing_slash(client_a, outputs):
    assert ids(client_a.get(URL + "/")) == ids(client_a.get(URL))


def test_list_shows_only_the_callers_organization(client_a, client_b, flow_a, flow_b, make_output):
    mine = make_output(flow_a)
    theirs = make_output(flow_b)

    assert ids(client_a.get(URL)) == [str(mine.id)]
    assert ids(client_b.get(URL)) == [str(theirs.id)]


def test_list_excludes_deleted_outputs(client_a, flow_a, make_output):
    kept = make_output(flow_a)
    make_output(flow_a, status=Status.DELETED)

    assert ids(client_a.get(URL)) == [str(kept.id)]
    assert ids(client_a.get(URL, {"status": "deleted"})) == []


def test_list_requires_credentials(anonymous_client):
    error_of(anonymous_client.get(URL), 401, "not_authenticated")


# --- Filters ------------------------------------------------------------------------------------


def test_list_filters_by_flow_execution(client_a, flow_a, make_flow, make_output):
    other_flow = make_flow(flow_a.organization)
    wanted = make_output(flow_a)
    make_output(other_flow)

    assert ids(client_a.get(URL, {"flow_execution_id": str(flow_a.id)})) == [str(wanted.id)]


def test_list_filters_by_task_execution(client_a, flow_a, make_output):
    task_execution = TaskExecution.objects.create(
        organization=flow_a.organization, flow_execution=flow_a, task_name="t"
    )
    wanted = make_output(flow_a, task_execution_id=task_execution.id)
    make_output(flow_a)

    assert ids(client_a.get(URL, {"task_execution_id": str(task_execution.id)})) == [str(wanted.id)]


def test_list_filters_by_exact_case_sensitive_task_name(client_a, flow_a, make_output):
    wanted = make_output(flow_a, task_name="Extract")
    make_output(flow_a, task_name="extract")
    make_output(flow_a, task_name="Extract text")

    assert ids(client_a.get(URL, {"task_name": "Extract"})) == [str(wanted.id)]


def test_list_filters_by_one_or_several_statuses(client_a, flow_a, make_output):
    done = make_output(flow_a, status=Status.COMPLETED, created_at=T0)
    failed = make_output(flow_a, status=Status.FAILED, created_at=T0 + timedelta(seconds=1))
    make_output(flow_a, status=Status.RUNNING)

    assert ids(client_a.get(URL, {"status": "completed"})) == [str(done.id)]
    both = [str(failed.id), str(done.id)]
    assert ids(client_a.get(URL, {"status": "completed,failed"})) == both
    assert ids(client_a.get(URL + "?status=completed&status=failed")) == both


def test_list_tag_filter_requires_every_tag(client_a, flow_a, make_output):
    both = make_output(flow_a, tags=["pdf", "ocr", "x"])
    make_output(flow_a, tags=["pdf"])
    make_output(flow_a, tags=["ocr"])

    assert ids(client_a.get(URL + "?tag=pdf&tag=ocr")) == [str(both.id)]
    assert len(ids(client_a.get(URL, {"tag": "pdf"}))) == 2
    assert ids(client_a.get(URL, {"tag": "missing"})) == []


def test_list_tag_filter_takes_commas_literally(client_a, flow_a, make_output):
    comma = make_output(flow_a, tags=["a,b"])
    make_output(flow_a, tags=["a", "b"])

    assert ids(client_a.get(URL, {"tag": "a,b"})) == [str(comma.id)]


def test_list_created_after_is_inclusive_and_created_before_exclusive(client_a, outputs):
    window = {"created_after": (T0 + timedelta(minutes=1)).isoformat(), "created_before": "2026-01-01T00:03:00Z"}

    assert ids(client_a.get(URL, window)) == [str(outputs[2].id), str(outputs[1].id)]


def test_list_reads_a_plus_sign_decoded_as_space_in_a_timestamp(client_a, outputs):
    response = client_a.get(URL + "?created_after=2026-01-01T01:03:00+01:00")

    assert ids(response) == [str(outputs[4].id), str(outputs[3].id)]


def test_list_filters_by_organization_id(client_a, flow_a, make_output):
    mine = make_output(flow_a)

    assert ids(client_a.get(URL, {"organization_id": str(flow_a.organization_id)})) == [str(mine.id)]
    assert ids(client_a.get(URL, {"organization_id": str(uuid.uuid4())})) == []


def test_list_combines_filters(client_a, flow_a, make_output):
    wanted = make_output(flow_a, task_name="a", status=Status.COMPLETED, tags=["x"], summary={"n": 5})
    make_output(flow_a, task_name="a", status=Status.COMPLETED, tags=["y"], summary={"n": 5})
    make_output(flow_a, task_name="a", status=Status.FAILED, tags=["x"], summary={"n": 5})
    make_output(flow_a, task_name="a", status=Status.COMPLETED, tags=["x"], summary={"n": 4})

    query = {"task_name": "a", "status": "completed", "tag": "x", "summary.n__gte": "5"}
    assert ids(client_a.get(URL, query)) == [str(wanted.id)]


# --- Summary queries ----------------------------------------------------------------------------


@pytest.fixture
def summaries(flow_a, make_output):
    values = {
        "int": {"code": 200},
        "float": {"code": 200.0},
        "string": {"code": "200"},
        "bool": {"code": True},
        "one": {"code": 1},
        "text": {"code": "ok"},
        "null": {"code": None},
        "nested": {"stats": {"rows": 5}},
        "list": {"code": [200]},
        "missing": {"other": 1},
        "plain": "code 200",
    }
    return {name: str(make_output(flow_a, task_name=name, summary=summary).id) for name, summary in values.items()}


def matches(client, summaries, query) -> set[str]:
    by_id = {v: k for k, v in summaries.items()}
    return {by_id[i] for i in ids(client.get(URL, query))}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("200", {"int", "float"}),
        ("200.0", {"int", "float"}),
        ('"200"', {"string"}),
        ("true", {"bool"}),
        ("1", {"one"}),
        ("ok", {"text"}),
        ("null", {"null"}),
        ("[200]", {"list"}),
        ("nothing", set()),
    ],
)
def test_summary_equality_compares_as_json(client_a, summaries, value, expected):
    assert matches(client_a, summaries, {"summary.code": value}) == expected


def test_summary_equality_follows_dotted_paths(client_a, summaries):
    assert matches(client_a, summaries, {"summary.stats.rows": "5"}) == {"nested"}
    assert matches(client_a, summaries, {"summary.stats": '{"rows": 5}'}) == {"nested"}


@pytest.mark.parametrize(
    ("operator", "number", "expected"),
    [
        ("gt", "199", {"int", "float"}),
        ("gt", "200", set()),
        ("gte", "200", {"int", "float"}),
        ("lt", "200", {"one"}),
        ("lte", "200.0", {"int", "float", "one"}),
        ("gte", "-1e3", {"int", "float", "one"}),
    ],
)
def test_summary_comparisons_match_numbers_only(client_a, summaries, operator, number, expected):
    assert matches(client_a, summaries, {f"summary.code__{operator}": number}) == expected


def test_summary_comparisons_work_on_nested_paths(client_a, summaries):
    assert matches(client_a, summaries, {"summary.stats.rows__lt": "6"}) == {"nested"}


@pytest.mark.parametrize(
    ("param", "value", "code"),
    [
        ("summary.code__gt", "abc", "invalid"),
        ("summary.code__gt", "true", "invalid"),
        ("summary.code__lte", "1e400", "invalid"),
        ("summary.code__gt", "NaN", "invalid"),
        ("summary.", "1", "invalid_path"),
        ("summary..code", "1", "invalid_path"),
        ("summary.code", "a\x00b", "invalid_text"),
    ],
)
def test_summary_queries_reject_malformed_input(client_a, summaries, param, value, code):
    response = client_a.get(URL, {param: value})

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {param: code}


# --- Malformed and unknown parameters -----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ({"flow_id": "x"}, "flow_id", "unknown_parameter"),
        ({"after": "x"}, "after", "invalid"),
        ({"after": "bGl2ZTox", "ordering": "created_at"}, "ordering", "invalid"),
        ({"ordering": "task_name"}, "ordering", "invalid_choice"),
        ({"status": "done"}, "status", "invalid_choice"),
        ({"flow_execution_id": "nope"}, "flow_execution_id", "invalid"),
        ({"created_after": "2026-01-01T00:00:00"}, "created_after", "naive"),
        ({"created_before": "soon"}, "created_before", "invalid"),
        ({"task_name": "a\x00"}, "task_name", "null_characters_not_allowed"),
        ({"tag": "x" * 101}, "tag", "max_length"),
        ({"page_size": "0"}, "page_size", "invalid"),
        ({"page_size": "501"}, "page_size", "invalid"),
        ({"page_size": "ten"}, "page_size", "invalid"),
        ({"cursor": "garbage"}, "cursor", "invalid"),
        ({"cursor": ""}, "cursor", "invalid"),
        ({"organization_id": ""}, "organization_id", "blank"),
        ({"task_name": ""}, "task_name", "blank"),
        ({"status": ""}, "status", "blank"),
    ],
)
def test_list_rejects_unknown_and_malformed_parameters(client_a, outputs, query, field, code):
    response = client_a.get(URL, query)

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {field: code}


def test_list_reports_every_bad_parameter_at_once(client_a):
    response = client_a.get(URL, {"bogus": "1", "status": "nope", "summary.x__gt": "y"})

    assert set(detail_codes(response)) == {"bogus", "status", "summary.x__gt"}


# --- Ordering and pagination --------------------------------------------------------------------


def test_list_orders_oldest_first_on_request(client_a, outputs):
    assert ids(client_a.get(URL, {"ordering": "created_at"})) == [str(o.id) for o in outputs]
    assert ids(client_a.get(URL, {"ordering": "-created_at"})) == [str(o.id) for o in reversed(outputs)]


@pytest.mark.parametrize("ordering", ["created_at", "-created_at"])
def test_pagination_visits_every_row_once(client_a, flow_a, make_output, ordering):
    same_time = [make_output(flow_a, created_at=T0) for _ in range(7)]  # ties are broken by id
    others = [make_output(flow_a, created_at=T0 + timedelta(seconds=i)) for i in range(1, 6)]

    seen = follow(client_a, f"{URL}?page_size=3&ordering={ordering}")

    assert len(seen) == len(set(seen)) == 12
    assert set(seen) == {str(o.id) for o in same_time + others}


@pytest.mark.parametrize("ordering", ["created_at", "-created_at"])
def test_pagination_is_stable_while_rows_are_inserted_between_pages(client_a, flow_a, make_output, ordering):
    original = {str(make_output(flow_a, created_at=T0 + timedelta(seconds=i)).id) for i in range(20)}
    seen: list[str] = []
    url = f"{URL}?page_size=4&ordering={ordering}"
    inserted = 0
    while url:
        page = client_a.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
        # Between pages: a new output now, a backfilled one in the middle and one tying an existing time.
        make_output(flow_a)
        make_output(flow_a, created_at=T0 + timedelta(seconds=10, microseconds=inserted))
        make_output(flow_a, created_at=T0 + timedelta(seconds=5))
        inserted += 1

    assert len(seen) == len(set(seen)), "a row was returned twice"
    assert original <= set(seen), "a row that existed before the first page was skipped"


@pytest.mark.postgres
@pytest.mark.parametrize("ordering", ["created_at", "-created_at"])
def test_a_deep_page_seeks_the_index_instead_of_reading_the_rows_before_it(client_a, flow_a, ordering):
    fields = {"organization": flow_a.organization, "flow_execution": flow_a, "flow_version": 1, "task_name": "bulk"}
    # Two rows per millisecond: ties, broken by id.
    TaskOutput.objects.bulk_create(
        TaskOutput(**fields, summary={}, created_at=T0 + timedelta(milliseconds=i // 2)) for i in range(3000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE task_outputs_taskoutput")
    url = f"{URL}?page_size=500&ordering={ordering}"
    for _ in range(4):  # to the fifth page: 2,000 rows before it
        url = client_a.get(url).json()["next"]

    response, nodes = list_query_plan(client_a, url)

    assert len(response.json()["results"]) == 500
    scans = [node for node in nodes if node.get("Relation Name") == "task_outputs_taskoutput"]
    assert len(scans) == 1 and "ROW(created_at, id)" in scans[0].get("Index Cond", ""), nodes
    assert scans[0].get("Rows Removed by Filter", 0) == 0, nodes


@pytest.mark.postgres
def test_the_planner_expects_about_as_many_summary_matches_as_there_are(client_a, flow_a):
    """With a second condition beside the containment, the planner multiplied two guesses, expected a
    hundredth of the rows and read every match of a common value instead of the newest page of them."""
    fields = {"organization": flow_a.organization, "flow_execution": flow_a, "flow_version": 1, "task_name": "t"}
    TaskOutput.objects.bulk_create(TaskOutput(**fields, summary={"pages": i % 3}) for i in range(3000))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE task_outputs_taskoutput")

    response, nodes = list_query_plan(client_a, f"{URL}?summary.pages=1&page_size=10")

    assert len(ids(response)) == 10
    scans = [node for node in nodes if node.get("Relation Name") == "task_outputs_taskoutput"]
    assert scans and all(node["Plan Rows"] >= 100 for node in scans), scans  # 1,000 match; before: 5 expected


def test_pagination_links_keep_the_filters(client_a, flow_a, make_output):
    for _ in range(3):
        make_output(flow_a, task_name="a")
    make_output(flow_a, task_name="b")

    first = client_a.get(URL, {"task_name": "a", "page_size": 2}).json()
    query = parse_qs(urlsplit(first["next"]).query)

    assert query["task_name"] == ["a"] and query["page_size"] == ["2"] and "cursor" in query
    assert len(follow(client_a, first["next"])) == 1


def test_previous_links_walk_back_page_by_page(client_a, outputs):
    first = client_a.get(URL, {"page_size": 2}).json()
    second = client_a.get(first["next"]).json()
    third = client_a.get(second["next"]).json()
    back_to_second = client_a.get(third["previous"]).json()
    back_to_first = client_a.get(back_to_second["previous"]).json()

    assert [r["id"] for r in back_to_second["results"]] == [r["id"] for r in second["results"]]
    assert [r["id"] for r in back_to_first["results"]] == [r["id"] for r in first["results"]]
    assert back_to_first["previous"] is None
    assert third["next"] is None


def test_page_size_defaults_to_50_and_allows_500(client_a, flow_a, make_output):
    TaskOutput.objects.bulk_create(
        TaskOutput(
            organization=flow_a.organization,
            flow_execution=flow_a,
            flow_version=flow_a.flow_version,
            task_name="bulk",
            summary={},
            created_at=T0 + timedelta(milliseconds=i),
        )
        for i in range(501)
    )

    assert len(ids(client_a.get(URL))) == 50
    assert len(ids(client_a.get(URL, {"page_size": 500}))) == 500


def test_a_cursor_cannot_be_reused_with_another_ordering(client_a, outputs):
    cursor_url = client_a.get(URL, {"page_size": 2}).json()["next"]
    cursor = parse_qs(urlsplit(cursor_url).query)["cursor"][0]

    response = client_a.get(URL, {"cursor": cursor, "ordering": "created_at"})

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {"cursor": "invalid"}


# --- GET one ------------------------------------------------------------------------------------


def test_get_one_returns_the_record(client_a, flow_a, make_output):
    output = make_output(flow_a, tags=["a"])

    for path in (f"{URL}/{output.id}", f"{URL}/{output.id}/"):
        response = client_a.get(path)
        assert response.status_code == 200
        assert response.json()["id"] == str(output.id)
        assert response.json()["tags"] == ["a"]


def test_get_one_ignores_list_filters(client_a, flow_a, make_output):
    output = make_output(flow_a, status=Status.COMPLETED)

    assert client_a.get(f"{URL}/{output.id}", {"status": "failed"}).status_code == 200


@pytest.mark.parametrize("path", [f"{URL}/{uuid.uuid4()}", f"{URL}/not-a-uuid", f"{URL}/1"])
def test_get_one_of_nothing_is_404(client_a, path):
    error_of(client_a.get(path), 404, "not_found")


def test_get_one_of_a_deleted_output_is_404(client_a, flow_a, make_output):
    output = make_output(flow_a, status=Status.DELETED)

    error_of(client_a.get(f"{URL}/{output.id}"), 404, "not_found")


# --- fields= -------------------------------------------------------------------------------------------------


def test_fields_returns_only_the_keys_asked_for_in_the_records_order(client_a, flow_a, make_output):
    for pages in range(3):
        make_output(flow_a, summary={"pages": pages, "words": 10, "stats": {"rows": pages}})

    page = client_a.get(URL, {"fields": "created_at,summary.pages,id,task_name", "page_size": 2}).json()
    rest = client_a.get(page["next"]).json()

    records = page["results"] + rest["results"]
    assert [list(record) for record in records] == [["id", "task_name", "summary", "created_at"]] * 3
    assert [record["summary"] for record in records] == [{"pages": 2}, {"pages": 1}, {"pages": 0}]
    assert "fields=" in page["next"]


def test_fields_keeps_nested_summary_paths_and_leaves_out_missing_ones(client_a, flow_a, make_output):
    output = make_output(flow_a, summary={"stats": {"rows": 5, "cols": 2}, "label": "ok"})
    text = make_output(flow_a, summary="plain text")

    def summaries(fields: str) -> dict[str, object]:
        return {r["id"]: r["summary"] for r in client_a.get(URL, {"fields": fields}).json()["results"]}

    assert summaries("id,summary.stats.rows,summary.nothing.here") == {str(output.id): {"stats": {"rows": 5}},
                                                                       str(text.id): {}}  # fmt: skip
    assert summaries("id,summary.stats,summary.stats.rows")[str(output.id)] == {"stats": {"rows": 5, "cols": 2}}
    assert summaries("id,summary,summary.label")[str(output.id)] == output.summary
    assert list(client_a.get(URL, {"fields": "status"}).json()["results"][0]) == ["status"]


def test_fields_on_one_output(client_a, flow_a, make_output):
    output = make_output(flow_a, summary={"pages": 3, "words": 10})

    response = client_a.get(f"{URL}/{output.id}", {"fields": "id,summary.words"})

    assert response.status_code == 200
    assert response.json() == {"id": str(output.id), "summary": {"words": 10}}


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ("id,bogus", "unknown_field"),
        ("id,,status", "blank"),
        ("summary.", "invalid_path"),
        ("summary..x", "invalid_path"),
        (",".join(["id"] * 51), "too_many"),
    ],
)
def test_fields_refuses_what_it_does_not_know(client_a, flow_a, make_output, fields, code):
    output = make_output(flow_a)

    for path in (URL, f"{URL}/{output.id}"):
        response = client_a.get(path, {"fields": fields})
        error_of(response, 422, "validation_error")
        assert detail_codes(response) == {"fields": code}


def test_fields_without_output_does_not_read_it(client_a, flow_a, make_output):
    make_output(flow_a, status="completed", output={"text": "x" * 10_000})

    with CaptureQueriesContext(connection) as queries:
        records = client_a.get(URL, {"fields": "id,status"}).json()["results"]

    assert records == [{"id": records[0]["id"], "status": "completed"}]
    listed = [q["sql"] for q in queries.captured_queries if 'FROM "task_outputs_taskoutput"' in q["sql"]]
    assert listed and all('"task_outputs_taskoutput"."output"' not in sql for sql in listed)


# --- ordering=summary.<path> -----------------------------------------------------------------------------------

ODD_VALUES = [{"n": 10}, {"n": 9}, {"n": -2.5}, {"n": 9.0}, {"n": "banana"}, {"n": "apple"}, {"n": True}, {"n": None},
              {"n": {"deep": 1}}, {"m": 1}, {}, {"n": 1e300}, {"n": "Apple pie"}, {"n": 0}]  # fmt: skip


def summary_order_key(record: dict, descending: bool) -> tuple:
    """The contract's order for ordering=[-]summary.n: numbers, then strings, then the rest; ties by created_at, id."""
    value = record["summary"].get("n") if isinstance(record["summary"], dict) else None
    sign = -1 if descending else 1
    if isinstance(value, int | float) and not isinstance(value, bool):
        key = (0, sign * value, "")
    elif isinstance(value, str):
        key = (1, 0, value)
    else:
        key = (2, 0, "")
    return key, record


@pytest.mark.parametrize("descending", [False, True])
def test_ordering_by_a_summary_value_puts_numbers_then_strings_then_the_rest(client_a, flow_a, make_output, descending):
    for i, summary in enumerate(ODD_VALUES * 2):
        make_output(flow_a, summary=summary, created_at=T0 + timedelta(seconds=i % 3))
    make_output(flow_a, summary="a text summary")
    ordering = "-summary.n" if descending else "summary.n"

    records = []
    url = f"{URL}?ordering={ordering}&page_size=4"
    while url:
        page = client_a.get(url).json()
        records += page["results"]
        url = page["next"]

    def group(record):  # the kind, then the value within it
        (kind, number, text), _ = summary_order_key(record, descending)
        return kind, number, text

    assert len(records) == len(ODD_VALUES) * 2 + 1
    kinds = [group(record)[0] for record in records]
    assert kinds == sorted(kinds), "numbers, then strings, then the rest: in both directions"
    numbers = [record["summary"]["n"] for record in records if group(record)[0] == 0]
    assert numbers == sorted(numbers, reverse=descending)
    texts = [record["summary"]["n"] for record in records if group(record)[0] == 1]
    assert texts == sorted(texts, reverse=descending)  # code point order: "Apple pie" before "apple"
    for a, b in itertools.pairwise(records):  # ties: created_at, then id, in the ordering's direction
        if group(a) == group(b):
            assert ((a["created_at"], a["id"]) > (b["created_at"], b["id"])) == descending


@pytest.mark.parametrize("ordering", ["summary.n", "-summary.n"])
def test_summary_ordering_pages_stay_exact_while_rows_are_inserted(client_a, flow_a, make_output, ordering):
    original = {str(make_output(flow_a, summary=summary).id) for summary in ODD_VALUES * 2}
    seen: list[str] = []
    url = f"{URL}?page_size=3&ordering={ordering}"
    step = 0
    while url:
        page = client_a.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
        # Between pages: values before, at and after wherever the traversal is.
        make_output(flow_a, summary=ODD_VALUES[step % len(ODD_VALUES)])
        make_output(flow_a, summary={"n": step})
        make_output(flow_a, summary={"n": "m" * (step % 5 + 1)})
        step += 1

    assert len(seen) == len(set(seen)), "a row was returned twice"
    assert original <= set(seen), "a row that existed before the first page was skipped"


def test_summary_ordering_walks_back_with_previous_links(client_a, flow_a, make_output):
    for summary in ODD_VALUES:
        make_output(flow_a, summary=summary)
    pages = [client_a.get(URL, {"ordering": "-summary.n", "page_size": 3}).json()]
    while pages[-1]["next"]:
        pages.append(client_a.get(pages[-1]["next"]).json())

    for later, earlier in itertools.pairwise(reversed(pages)):
        assert client_a.get(later["previous"]).json()["results"] == earlier["results"]


def test_summary_ordering_follows_nested_paths(client_a, flow_a, make_output):
    rows = {n: make_output(flow_a, summary={"stats": {"rows": n}}) for n in (3, 100, 20)}
    make_output(flow_a, summary={"stats": 5})

    assert ids(client_a.get(URL, {"ordering": "summary.stats.rows"}))[:3] == [str(rows[n].id) for n in (3, 20, 100)]


@pytest.mark.parametrize("ordering", ["summary.", "summary..x", "-summary", "tags.x", "task_name", "--created_at"])
def test_an_unknown_ordering_is_a_422(client_a, ordering):
    response = client_a.get(URL, {"ordering": ordering})

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {"ordering": "invalid_choice"}


def test_a_summary_ordering_cursor_is_only_good_for_that_ordering(client_a, flow_a, make_output):
    for n in range(3):
        make_output(flow_a, summary={"a": n, "b": n})
    cursor = parse_qs(urlsplit(client_a.get(URL, {"ordering": "summary.a", "page_size": 1}).json()["next"]).query)

    response = client_a.get(URL, {"ordering": "summary.b", "page_size": 1, "cursor": cursor["cursor"][0]})

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {"cursor": "invalid"}


@pytest.mark.postgres
def test_summary_ordering_keeps_big_numbers_exact_on_postgresql(client_a, flow_a, make_output):
    big = 10**20
    rows = [make_output(flow_a, summary={"n": n}) for n in (big + 1, big, big + 2)]

    seen = follow(client_a, f"{URL}?ordering=summary.n&page_size=1")

    assert seen == [str(rows[i].id) for i in (1, 0, 2)]
