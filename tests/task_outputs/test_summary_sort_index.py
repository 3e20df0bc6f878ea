"""`manage.py summary_sort_index`: indexes that serve `ordering=summary.<path>` (PostgreSQL)."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from task_outputs.management.commands.summary_sort_index import index_names
from task_outputs.models import TaskOutput
from tests.helpers import connection_as, list_query_plan, plan_nodes

URL = "/api/v1/task-outputs"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def command(*args: str) -> str:
    printed = io.StringIO()
    call_command("summary_sort_index", *args, stdout=printed)
    return printed.getvalue()


def walk(client, url: str) -> list[str]:
    seen = []
    while url:
        page = client.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    return seen


def generic_plan_of(client, url: str) -> dict:
    """The plan PostgreSQL makes of the page's list query once prepared for any parameters (a generic plan),
    as it may for a statement the server runs often (psycopg prepares them: DB_PREPARE_THRESHOLD), with
    sorting discouraged: whether an index can serve such a plan at all (on a small table it would not be
    chosen anyway)."""
    captured = []

    def capture(execute, sql, params, many, context):
        if sql.startswith("SELECT") and 'FROM "task_outputs_taskoutput"' in sql and "LIMIT" in sql:
            captured.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        assert client.get(url).status_code == 200
    (sql, params), numbered = captured[0], iter(range(1, 1000))
    statement = re.sub(r"%s", lambda _: f"${next(numbered)}", sql).replace("%%", "%")
    arguments = ", ".join(connection.ops.compose_sql("%s", [param]) for param in params)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"PREPARE sort_page AS {statement}")
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute("SET LOCAL enable_sort = off")  # use the index if it can serve this plan at all
        try:
            cursor.execute(f"EXPLAIN (FORMAT JSON) EXECUTE sort_page({arguments})")
            return cursor.fetchone()[0][0]["Plan"]
        finally:
            cursor.execute("DEALLOCATE sort_page")


def index_scans(nodes: list[dict]) -> dict[str, int]:
    """The rows each index scan among plan `nodes` returned (or, not run, was expected to), by index name."""
    return {node["Index Name"]: node.get("Actual Rows", node["Plan Rows"]) for node in nodes if "Index Name" in node}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # CREATE INDEX CONCURRENTLY runs outside a transaction
def test_an_added_index_serves_both_directions_with_the_same_pages(client_a, flow_a, runtime_role):
    fields = {"organization": flow_a.organization, "flow_execution": flow_a, "flow_version": 1, "task_name": "t"}

    def summary(i: int) -> dict:  # numbers (with ties), strings, and neither
        return [{"pages": i % 97}, {"pages": f"s{i % 7}"}, {"other": 1}, {"pages": i * 0.5}][i % 4]

    TaskOutput.objects.bulk_create(
        TaskOutput(**fields, summary=summary(i), created_at=T0 + timedelta(seconds=i // 3)) for i in range(4000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE task_outputs_taskoutput")
    urls = [f"{URL}?ordering=-summary.pages&page_size=200", f"{URL}?ordering=summary.pages&page_size=200"]
    before = [walk(client_a, url) for url in urls]
    names = index_names(["pages"])
    try:
        printed = command("add", "summary.pages")  # as the tables' owner

        assert "can now read from an index" in printed
        listed = command("list")
        assert f"summary.pages ascending  {names['asc']}" in listed
        assert f"summary.pages descending  {names['desc']}" in listed
        with connection_as(runtime_role):  # as deployed: row-level security on
            for url, direction in zip(urls, ("desc", "asc"), strict=True):
                scans = index_scans(list_query_plan(client_a, url)[1])
                assert scans.get(names[direction], 4000) <= 201, scans  # one page read in order, not 4,000 sorted
                # Also a generic plan: the path is part of the SQL, not a parameter the index cannot match.
                assert names[direction] in index_scans(plan_nodes(generic_plan_of(client_a, url)))
            assert [walk(client_a, url) for url in urls] == before  # the same rows in the same order, page by page
    finally:
        command("remove", "summary.pages")
    assert "No summary sort indexes." in command("list")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_interrupted_build_is_listed_as_invalid_and_add_makes_it_again(db):
    names = index_names(["score"])
    try:
        command("add", "summary.score")
        with connection.cursor() as cursor:  # what a build cut short leaves: an index marked not valid, no comment
            cursor.execute(f"COMMENT ON INDEX {names['desc']} IS NULL")
            cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [names["desc"]])

        assert f"(path unknown)  {names['desc']}  0.0 MiB  INVALID" in command("list")

        command("add", "summary.score")
        listed = command("list")
        assert "INVALID" not in listed and f"summary.score descending  {names['desc']}" in listed
    finally:
        command("remove", "summary.score")


@pytest.mark.postgres
@pytest.mark.parametrize("path", ["pages", "summary.", "summary..x", "summary"])
def test_a_malformed_path_is_refused(db, path):
    with pytest.raises(CommandError, match=r"summary\.<key>"):
        command("add", path)


def test_each_database_gets_its_answer(db):
    if connection.vendor == "postgresql":
        assert command("list").strip() == "No summary sort indexes."
    else:  # the embedded default sorts in memory
        with pytest.raises(CommandError, match="for PostgreSQL"):
            command("add", "summary.pages")
