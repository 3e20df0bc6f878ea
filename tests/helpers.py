"""Assertions and clients that many tests share."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
from django.db import connection
from psycopg import sql
from rest_framework.test import APIClient

# Roles and databases that tests create on the PostgreSQL server are named with this prefix, a kind and
# a random part (throwaway_name), so that runs sharing a server never meet, and the fixture that creates
# one drops it again, failed tests or not. .ci/run fails when a run leaves one behind (docs/testing.md).
THROWAWAY_PREFIX = "superai_flow_test_"


def bearer_client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def error_of(response, status: int, code: str) -> dict[str, Any]:
    """Assert `response` is the error envelope with `status` and `code`; return the body."""
    assert response.status_code == status, response.content
    assert response.headers["Content-Type"].startswith("application/json")  # Django's test responses or httpx's
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def page_text(response) -> str:
    """A page's HTML, once it answered 200."""
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def detail_codes(response) -> dict[str | None, str]:
    """{field: code} of an error response's details."""
    return {d["field"]: d["code"] for d in response.json()["error"]["details"]}


def throwaway_name(kind: str) -> str:
    """A fresh name for a role or database that a test creates on the PostgreSQL server and drops again."""
    return f"{THROWAWAY_PREFIX}{kind}_{uuid.uuid4().hex[:8]}"


def server_admin(settings: dict[str, Any], dbname: str = "postgres") -> psycopg.Connection:
    """An autocommit connection to `dbname` on the test server, as the user of `settings` (a Django
    connection's settings_dict, whose user creates the test database: a superuser)."""
    return psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=dbname,
        autocommit=True,
    )


def drop_role(settings: dict[str, Any], role: str, *, databases: tuple[str, ...] = ()) -> None:
    """Drop `role`, first dropping what it owns and revoking what it was granted in each of `databases`
    that still exists (a role that any database still mentions cannot be dropped)."""
    with server_admin(settings) as admin:
        if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is None:
            return
        existing = {row[0] for row in admin.execute("SELECT datname FROM pg_database").fetchall()}
    for dbname in databases:
        if dbname in existing:
            with server_admin(settings, dbname) as admin:
                admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    with server_admin(settings) as admin:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def drop_database(settings: dict[str, Any], database: str) -> None:
    """Drop `database`, ending the sessions still connected to it."""
    with server_admin(settings) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def list_query_plan(client: APIClient, url: str) -> tuple[Any, list[dict[str, Any]]]:
    """GET `url` with `client`, and the EXPLAIN ANALYZE plan of the task-output list query it ran (PostgreSQL):
    (the response, every node of the plan, the top one first)."""
    plans = []

    def explain(execute, sql_text, params, many, context):
        if sql_text.startswith("SELECT") and 'FROM "task_outputs_taskoutput"' in sql_text and "LIMIT" in sql_text:
            raw = context["cursor"].cursor  # psycopg's own cursor: not through this wrapper again
            raw.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql_text}", params)
            plans.append(raw.fetchone()[0][0]["Plan"])
        return execute(sql_text, params, many, context)

    with connection.execute_wrapper(explain):
        response = client.get(url)
    assert len(plans) == 1, plans
    return response, plan_nodes(plans[0])


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan, the top one first."""
    nodes, stack = [], [plan]
    while stack:
        nodes.append(stack.pop())
        stack += nodes[-1].get("Plans", [])
    return nodes


@contextlib.contextmanager
def connection_as(user: str) -> Iterator[None]:
    """Django's default connection as PostgreSQL role `user` inside the block, as before it afterwards."""

    def switch(to: str) -> None:
        connection.close()
        connection.close_pool()
        connection.settings_dict["USER"] = to

    before = connection.settings_dict["USER"]
    switch(user)
    try:
        yield
    finally:
        switch(before)


class EventStreamReader:
    """Server-Sent Events as a client reads them: feed it text as it arrives, take whole blocks out.

    Each block is a dict of its fields (`id`, `event`, `data`, `retry`; comments under `comment`), and the
    reader keeps the last `id` it saw, as EventSource does for its Last-Event-ID.
    """

    def __init__(self) -> None:
        self.buffer = ""
        self.last_id: str | None = None

    def feed(self, text: str) -> list[dict[str, str]]:
        self.buffer += text
        *complete, self.buffer = self.buffer.split("\n\n")
        blocks = []
        for raw in complete:
            block: dict[str, str] = {}
            for line in raw.split("\n"):
                name, _, value = line.partition(":")
                block[name or "comment"] = value.removeprefix(" ")
            if "id" in block:
                self.last_id = block["id"]
            blocks.append(block)
        return blocks
