"""`tag=` filters: pages walked while outputs are written, and on PostgreSQL the tag rows it reads.

On PostgreSQL a tag filter reads `task_outputs_tag` (migration 0012), one row per tag of each output,
which triggers keep in step with every write; SQLite filters the JSON itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from task_outputs.models import TaskOutput
from tests.helpers import error_of, list_query_plan

URL = "/api/v1/task-outputs"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def tag_rows(output: TaskOutput) -> set[tuple[str, datetime]]:
    """The output's rows in task_outputs_tag: (tag, created_at)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tag, created_at FROM task_outputs_tag WHERE task_output_id = %s AND organization_id = %s",
            [output.id, output.organization_id],
        )
        return set(cursor.fetchall())


def walk(client, url: str, *, between=lambda: None) -> list[str]:
    """Every id from `url` on, following `next` links, calling `between` before each next page."""
    seen: list[str] = []
    while url:
        page = client.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
        between()
    return seen


@pytest.mark.parametrize("ordering", ["-created_at", "created_at"])
def test_walking_a_tag_filtered_list_while_tagged_outputs_are_added(client_a, flow_a, make_output, ordering):
    tagged = [make_output(flow_a, tags=["keep", f"n{i}"]) for i in range(7)]
    for _ in range(3):
        make_output(flow_a, tags=["other"])
    added: list[TaskOutput] = []

    def add_one() -> None:
        added.append(make_output(flow_a, tags=["keep"]))

    seen = walk(client_a, f"{URL}?tag=keep&page_size=2&ordering={ordering}", between=add_one)

    oldest_first = [str(output.id) for output in tagged]
    if ordering == "-created_at":  # newer outputs are behind the walk: exactly the ones there when it began
        assert seen == oldest_first[::-1]
    else:  # newer outputs come after the last page seen: each one once, in order, none skipped
        assert seen[:7] == oldest_first
        assert seen[7:] == [str(output.id) for output in added[: len(seen) - 7]]
        assert len(seen) == len(set(seen))


def test_previous_links_of_a_tag_filtered_list_walk_back(client_a, flow_a, make_output):
    for _ in range(5):
        make_output(flow_a, tags=["keep"])
        make_output(flow_a, tags=["skip"])
    first = client_a.get(URL, {"tag": "keep", "page_size": 2}).json()
    second = client_a.get(first["next"]).json()
    third = client_a.get(second["next"]).json()

    back = client_a.get(third["previous"]).json()

    assert [row["id"] for row in back["results"]] == [row["id"] for row in second["results"]]
    assert client_a.get(back["previous"]).json()["results"] == first["results"]
    assert len(third["results"]) == 1 and third["next"] is None


def test_a_tag_filtered_cursor_names_the_public_ordering(client_a, flow_a, make_output):
    for _ in range(3):
        make_output(flow_a, tags=["keep"])
    following = client_a.get(URL, {"tag": "keep", "page_size": 2}).json()["next"]

    assert len(ids(client_a.get(following + "&ordering=-created_at"))) == 1
    body = error_of(client_a.get(following + "&ordering=created_at"), 422, "validation_error")
    assert "ordering=-created_at" in {d["field"]: d["message"] for d in body["error"]["details"]}["cursor"]


@pytest.mark.postgres
def test_the_tag_rows_follow_every_write(client_a, flow_a, make_output):
    output = make_output(flow_a, tags=["a", "b"])
    assert tag_rows(output) == {("a", output.created_at), ("b", output.created_at)}

    client_a.patch(f"{URL}/{output.id}", {"tags": ["b", "c"]}, format="json")
    assert {tag for tag, _ in tag_rows(output)} == {"b", "c"}
    assert ids(client_a.get(URL, {"tag": "a"})) == []
    assert ids(client_a.get(URL, {"tag": "c"})) == [str(output.id)]

    later = output.created_at + timedelta(hours=1)
    TaskOutput.objects.filter(pk=output.pk).update(tags=["d", "d"], created_at=later)  # as admin or a script would
    output.refresh_from_db()
    assert tag_rows(output) == {("d", later)}

    TaskOutput.objects.filter(pk=output.pk).delete()
    assert tag_rows(output) == set()


@pytest.mark.postgres
def test_tags_no_filter_can_name_are_not_kept(flow_a):
    output = TaskOutput.objects.create(
        organization=flow_a.organization, flow_execution=flow_a, flow_version=1, task_name="t", summary={},
        tags=["x" * 101, 5, None, "ok", "ok"],
    )  # fmt: skip

    assert tag_rows(output) == {("ok", output.created_at)}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # VACUUM, as autovacuum would have done on a table this size
@pytest.mark.parametrize("tag", ["rare", "common"])
def test_a_tagged_page_reads_the_tag_key_newest_first(client_a, flow_a, tag):
    fields = {"organization": flow_a.organization, "flow_execution": flow_a, "flow_version": 1, "task_name": "t"}
    every = [["common", "rare"] if i % 20 == 0 else ["common"] for i in range(20000)]
    TaskOutput.objects.bulk_create(
        TaskOutput(**fields, summary={}, created_at=T0 + timedelta(milliseconds=i // 2), tags=tags)
        for i, tags in enumerate(every)
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE task_outputs_taskoutput")
        cursor.execute("VACUUM ANALYZE task_outputs_tag")
    expected = list(
        TaskOutput.objects.filter(tags__contains=[tag]).order_by("-created_at", "-id").values_list("id", flat=True)
    )
    url = f"{URL}?tag={tag}&page_size=50"
    for _ in range(3):  # to the fourth page
        url = client_a.get(url).json()["next"]

    response, nodes = list_query_plan(client_a, url)

    assert ids(response) == [str(pk) for pk in expected[150:200]]
    walks = [node for node in nodes if node.get("Relation Name") == "task_outputs_tag"]
    assert len(walks) == 1 and walks[0]["Node Type"] == "Index Only Scan", nodes
    assert walks[0]["Scan Direction"] == "Backward" and "ROW(created_at, task_output_id) <" in walks[0]["Index Cond"]
    assert walks[0]["Actual Rows"] <= 51, walks  # the page and one more, not every match
    assert not [node for node in nodes if node["Node Type"] == "Sort"], nodes
