"""Tenant isolation held by PostgreSQL itself, proven as the role the service runs as.

Everything here connects as a production-like role: no SUPERUSER, no BYPASSRLS, owner of no table.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.db.models import Q

from flow_executions.models import FlowExecution, TaskExecution
from superai_flow.exceptions import NotFound
from superai_flow.json_queries import JSONArrayContainsAll
from superai_flow.organizations.models import APIKey, Membership, Organization
from superai_flow.organizations.services import api_key_create
from superai_flow.tenancy import TENANT_TABLES, set_scope
from task_outputs.models import TaskOutput
from task_outputs.services import task_output_create
from tests.e2e.servers import PROJECT_DIR
from tests.helpers import bearer_client, drop_database, drop_role, server_admin, throwaway_name

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def world(org_a, org_b, flow_a, flow_b, make_output, django_user_model):
    """Rows of both organizations in every tenant table, written as the owner."""
    for org, flow in ((org_a, flow_a), (org_b, flow_b)):
        TaskExecution.objects.create(organization=org, flow_execution=flow, task_name="t")
        make_output(flow, tags=["t"])  # a row in task_outputs_tag too
        Membership.objects.create(organization=org, user=django_user_model.objects.create_user(f"u-{org.name}"))
    keys = {org.id: api_key_create(organization=org, name="k")[1] for org in (org_a, org_b)}
    return org_a, org_b, keys


@pytest.fixture
def as_runtime_role(world, as_runtime_role):
    """The suite's `as_runtime_role`, once `world` is made (as the owner)."""
    return as_runtime_role


def rows_of(table: str) -> list[uuid.UUID]:
    column = TENANT_TABLES[table]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table}")  # every row the policy lets through
        return [row[0] for row in cursor.fetchall()]


def test_every_tenant_table_enables_and_forces_row_level_security(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = ANY(%s)",
            [list(TENANT_TABLES)],
        )
        flags = {name: (enabled, forced) for name, enabled, forced in cursor.fetchall()}

    assert flags == {table: (True, True) for table in TENANT_TABLES}


def test_the_runtime_role_can_get_around_nothing(as_runtime_role):
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (False, False)
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname = ANY(%s) AND relowner = "
                       "(SELECT oid FROM pg_roles WHERE rolname = current_user)", [list(TENANT_TABLES)])  # fmt: skip
        assert cursor.fetchone() == (0,)


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_a_raw_select_returns_only_the_scoped_organizations_rows(as_runtime_role, world, table):
    org_a, _, _ = world
    expected = {"organizations_organization": 1, "organizations_membership": 1, "organizations_apikey": 1}.get(table)

    with transaction.atomic():
        set_scope([org_a.id])
        seen = rows_of(table)

    assert seen and set(seen) == {org_a.id}
    assert expected is None or len(seen) == expected


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_with_no_organization_set_nothing_is_visible(as_runtime_role, world, table):
    with transaction.atomic():
        assert rows_of(table) == []
    assert rows_of(table) == []  # outside any transaction too


def test_writing_another_organizations_row_is_refused(as_runtime_role, world):
    org_a, org_b, _ = world

    with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
        set_scope([org_a.id])
        FlowExecution.objects.create(organization_id=org_b.id, flow_name="smuggled")
    with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
        set_scope([org_a.id])
        with connection.cursor() as cursor:
            cursor.execute("UPDATE flow_executions_flowexecution SET organization_id = %s", [org_b.id])


def test_another_organizations_rows_cannot_be_changed_or_deleted(as_runtime_role, world):
    org_a, org_b, _ = world

    with transaction.atomic():
        set_scope([org_a.id])
        with connection.cursor() as cursor:
            cursor.execute("UPDATE task_outputs_taskoutput SET task_name = 'hijacked' WHERE organization_id = %s",
                           [org_b.id])  # fmt: skip
            updated = cursor.rowcount
            cursor.execute("DELETE FROM task_outputs_taskoutput WHERE organization_id = %s", [org_b.id])
            deleted = cursor.rowcount

    assert (updated, deleted) == (0, 0)


@pytest.fixture
def crowded(world, flow_a):
    """5,000 more outputs in organization A, one tag and one summary value in a thousand, analyzed."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO task_outputs_taskoutput (id, organization_id, flow_execution_id, flow_version, task_name,
                status, summary, output, tags, modified_by, created_at, updated_at, write_txid, write_horizon,
                cursor_horizon, revision)
            SELECT gen_random_uuid(), %s, %s, 1, 'bulk', 'completed', jsonb_build_object('k', n %% 1000),
                   '{}'::jsonb, jsonb_build_array('t' || (n %% 1000)), 'test', now(), now(), n, n, n, 1
            FROM generate_series(1, 5000) AS n
            """,
            [flow_a.organization_id, flow_a.id],
        )
        cursor.execute("ANALYZE task_outputs_taskoutput")
    return world


@pytest.mark.parametrize(
    ("condition", "index"),
    [
        (JSONArrayContainsAll("tags", ["t7"]), "task_out_org_tags_gin"),
        (Q(summary__contains={"k": 7}), "task_out_org_summary_gin"),
    ],
)
def test_json_filters_keep_their_gin_index_under_row_level_security(crowded, as_runtime_role, condition, index):
    """jsonb containment must be LEAKPROOF (task_outputs/0006), or the planner may not use the index first."""
    org_a, _, _ = crowded
    with transaction.atomic():
        set_scope([org_a.id])
        plan = TaskOutput.objects.filter(condition).explain()
        found = TaskOutput.objects.filter(condition).count()

    assert index in plan
    assert found == 5


@pytest.mark.parametrize("request_kind", ["list", "create"])
def test_a_pooled_connection_carries_no_scope_into_the_next_request(as_runtime_role, world, request_kind):
    org_a, _, keys = world
    connection.close_pool()
    pool_options = connection.settings_dict["OPTIONS"]["pool"]
    connection.settings_dict["OPTIONS"]["pool"] = {"min_size": 1, "max_size": 1, "timeout": 5}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        connection.close()  # back to the pool, as at the end of a request

        client = bearer_client(keys[org_a.id])
        if request_kind == "create":  # no request transaction: the INSERT's statement scopes itself
            flow = client.get("/api/v1/flow-executions").json()["results"][0]["id"]
            connection.close()
            created = client.post("/api/v1/task-outputs", {"organization_id": str(org_a.id),
                                                           "flow_execution_id": flow, "task_name": "x",
                                                           "summary": {}})  # fmt: skip
            assert created.status_code == 201, created.json()
        listed = client.get("/api/v1/task-outputs").json()["results"]

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid(), current_setting('superai.organization_ids', true)")
            same_backend, leftover = cursor.fetchone()
            cursor.execute("SELECT count(*) FROM task_outputs_taskoutput")
            visible = cursor.fetchone()[0]
    finally:
        connection.close()
        connection.close_pool()
        connection.settings_dict["OPTIONS"]["pool"] = pool_options

    assert len(listed) == 1 + (request_kind == "create")  # the requests saw their organization's outputs...
    assert same_backend == backend  # ...on the very connection that is now reused...
    assert leftover in ("", None) and visible == 0  # ...which kept nothing of its scope


def test_a_create_outside_a_transaction_is_scoped_by_the_callers_credentials_not_by_its_body(
    as_runtime_role, world, flow_b
):
    """An API-key create runs as one statement scoped to `statement_scope`, the key's organizations
    (TenantScopeMiddleware, task_outputs.services): a body naming another organization finds nothing
    there even if the view's own check were missing, and no scope at all sees nothing."""
    org_a, org_b, _ = world
    body = {"organization_id": org_b.id, "flow_execution_id": flow_b.id, "task_name": "x", "summary": {}}
    assert not connection.in_atomic_block

    for scope in ([org_a.id], []):
        with pytest.raises(NotFound):
            task_output_create(**body, statement_scope=scope)
    created, _ = task_output_create(**body, statement_scope=[org_b.id])

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('superai.organization_ids', true)")
        leftover = cursor.fetchone()[0]
    with transaction.atomic():
        set_scope([org_b.id])
        stored = list(TaskOutput.objects.filter(flow_execution=flow_b).values_list("id", flat=True))
    assert created.id in stored and len(stored) == 2  # the world's output of B, and this one
    assert leftover in ("", None)  # the statement's scope ended with it


def test_the_api_keeps_tenants_apart_under_the_runtime_role(as_runtime_role, world):
    org_a, org_b, keys = world
    client_a, client_b = bearer_client(keys[org_a.id]), bearer_client(keys[org_b.id])
    flow_a = client_a.get("/api/v1/flow-executions").json()["results"][0]
    theirs = client_b.get("/api/v1/task-outputs").json()["results"][0]

    created = client_a.post("/api/v1/task-outputs", {"organization_id": str(org_a.id),
                                                     "flow_execution_id": flow_a["id"], "task_name": "x",
                                                     "summary": {}})  # fmt: skip
    stolen_id = client_a.post("/api/v1/task-outputs", {"id": theirs["id"], "organization_id": str(org_a.id),
                                                       "flow_execution_id": flow_a["id"], "task_name": "x",
                                                       "summary": {}})  # fmt: skip

    assert created.status_code == 201
    assert {row["organization_id"] for row in client_a.get("/api/v1/task-outputs").json()["results"]} == {str(org_a.id)}
    assert client_a.get(f"/api/v1/task-outputs/{theirs['id']}").status_code == 404
    assert stolen_id.status_code == 409


def test_system_jobs_bypass_on_purpose_and_leave_a_trace(as_runtime_role, world, caplog):
    with caplog.at_level(logging.INFO, logger="superai_flow.audit"):
        call_command("create_api_key", "Org B", "--name", "nightly", stdout=io.StringIO(), stderr=io.StringIO())

    assert "Row-level security bypassed: manage.py create_api_key" in caplog.text
    with transaction.atomic():
        set_scope(None, bypass_reason="test: count every key")
        assert APIKey.objects.filter(name="nightly").count() == 1


def test_an_organization_created_under_bypass_can_be_filled_at_once(as_runtime_role, world):
    with transaction.atomic():
        set_scope(None, bypass_reason="test: onboarding")
        created = Organization.objects.create(name="Org C")
        FlowExecution.objects.create(organization=created, flow_name="first")
        seen = set(Organization.objects.values_list("name", flat=True))

    assert seen == {"Org A", "Org B", "Org C"}
    with transaction.atomic():
        set_scope([created.id])
        assert list(FlowExecution.objects.values_list("flow_name", flat=True)) == ["first"]


def test_the_deploy_check_accepts_the_runtime_role_and_refuses_the_owner(world, runtime_role):
    def errors() -> set[str]:
        found = run_checks(include_deployment_checks=True, databases=["default"])
        return {error.id for error in found if error.id.startswith("superai_flow.")}

    as_owner = errors()  # the test database's owner, a superuser
    owner = connection.settings_dict["USER"]
    connection.close()
    connection.close_pool()
    connection.settings_dict["USER"] = runtime_role
    try:
        as_runtime = errors()
    finally:
        connection.close()
        connection.close_pool()
        connection.settings_dict["USER"] = owner

    assert "superai_flow.E001" in as_owner
    assert as_runtime == set()


def test_nothing_is_visible_over_a_plain_connection_either(world, runtime_role):
    """Not just through Django: any client that logs in as the runtime role sees no tenant rows."""
    database = connection.settings_dict
    with psycopg.connect(host=database["HOST"] or "127.0.0.1", port=database["PORT"] or 5432,
                         dbname=database["NAME"], user=runtime_role) as raw:  # fmt: skip
        counts = {table: raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TENANT_TABLES}

    assert counts == dict.fromkeys(TENANT_TABLES, 0)
    assert Organization.objects.count() == 2 and TaskOutput.objects.count() == 2  # as the owner: all there


@pytest.fixture
def owned_database(runtime_role) -> Iterator[tuple[str, str]]:
    """(owner role, database): a fresh database on the test server, owned by a fresh role that is no
    superuser; both dropped after the test, the database first (the role owns it), failed test or not."""
    settings = dict(connection.settings_dict)
    owner, database = throwaway_name("owner"), throwaway_name("deploy")
    try:
        with server_admin(settings) as admin:
            admin.execute(f'CREATE ROLE "{owner}" LOGIN NOSUPERUSER NOBYPASSRLS')
            admin.execute(f'CREATE DATABASE "{database}" OWNER "{owner}"')
        yield owner, database
    finally:
        drop_database(settings, database)
        drop_role(settings, owner)


def test_the_documented_deployment_migrates_as_the_owner_and_runs_as_the_runtime_role(
    runtime_role, owned_database, tmp_path
):
    """docs/security.md's procedure, on a fresh database owned by a role that is no superuser: migrate
    with DATABASE_MIGRATION_URL; then the runtime role passes the deploy check, system jobs create an
    organization and a key, and the key is found by the lookup that precedes any scope."""
    owner_role, database = owned_database
    settings = connection.settings_dict
    server = f"{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}"
    owner_url = f"postgresql://{owner_role}@{server}/{database}"
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{runtime_role}@{server}/{database}",
        "DATABASE_MIGRATION_URL": owner_url,
        "SUPERAI_FLOW_VAR_DIR": str(tmp_path),
    }
    env.pop("REDIS_URL", None)

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip

    migrate = manage("migrate", "--database", "owner", "--noinput")
    assert migrate.returncode == 0, migrate.stderr
    check = manage("check", "--deploy", "--database", "default", "--fail-level", "ERROR")
    assert check.returncode == 0 and "superai_flow.E" not in check.stderr, check.stderr
    assert "superai_flow.W001" in check.stderr  # no superuser migrated: jsonb_contains is not LEAKPROOF
    assert manage("create_organization", "Deployed").returncode == 0
    key = manage("create_api_key", "Deployed", "--name", "first")
    assert key.returncode == 0, key.stderr
    raw_key = next(word for word in key.stdout.split() if word.startswith("sfk_"))
    with psycopg.connect(f"postgresql://{runtime_role}@{server}/{database}") as app:  # one transaction
        found = app.execute("SELECT name FROM superai_api_key_by_prefix(%s)", [raw_key[:12]]).fetchall()
        left_raised = app.execute("SELECT current_setting('superai.rls_bypass', true)").fetchone()[0]
        visible = app.execute("SELECT count(*) FROM organizations_apikey").fetchone()[0]
    with psycopg.connect(owner_url, autocommit=True) as owner:
        owned = owner.execute(
            "SELECT count(*) FROM pg_class WHERE relname = 'task_outputs_taskoutput' "
            "AND pg_get_userbyid(relowner) = %s",
            [owner_role],
        ).fetchone()[0]
    assert owned == 1
    assert found == [("first",)]  # the narrow lookup sees the key...
    assert left_raised == "" and visible == 0  # ...and lowers its flag again: a plain query sees nothing
