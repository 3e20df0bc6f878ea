"""Shared fixtures: two tenants with API clients, factories for flow executions and task outputs.

Markers: `postgres` tests skip on SQLite, `redis` tests skip without REDIS_URL. CI's PostgreSQL + Redis
pass sets SUPERAI_FLOW_FORBID_SKIPS=1, which turns any skip into a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from flow_executions.models import FlowExecution
from flow_executions.services import flow_execution_create
from superai_flow.organizations.models import Organization
from superai_flow.organizations.services import api_key_create
from superai_flow.tenancy import grant_runtime_privileges
from task_outputs.models import TaskOutput
from task_outputs.services import task_output_create
from tests.helpers import bearer_client, connection_as, drop_role, throwaway_name


def pytest_runtest_setup(item):
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")
    if item.get_closest_marker("redis") and not settings.REDIS_URL:
        pytest.skip("needs Redis: set REDIS_URL=redis://...")


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("SUPERAI_FLOW_FORBID_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(
            f"{len(skipped)} test(s) skipped while SUPERAI_FLOW_FORBID_SKIPS=1: this pass must run every test.",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def runtime_role(django_db_setup, django_db_blocker) -> Iterator[str | None]:
    """On PostgreSQL: a role like production's (no SUPERUSER, no BYPASSRLS, owns nothing), with the
    privileges migrations grant, for tests that must hold under row-level security. None on SQLite.

    A fresh role for each run (runs that share a server never meet), dropped at the end of the session
    with everything granted to it in the test database, which still exists then."""
    if connection.vendor != "postgresql":
        yield None
        return
    role = throwaway_name("runtime")
    owner_settings = dict(connection.settings_dict)  # the test database's, as the superuser who made it
    try:
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE')
            grant_runtime_privileges(role)
        yield role
    finally:
        drop_role(owner_settings, role, databases=(owner_settings["NAME"],))


@pytest.fixture
def as_runtime_role(runtime_role):
    """Django's connection as the role the service runs as (no SUPERUSER, no BYPASSRLS), for the rest of
    the test; the owner's again afterwards."""

    with connection_as(runtime_role):
        yield runtime_role


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Real hashing costs a good part of a second per user; these tests are not about it."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def org_a(db) -> Organization:
    return Organization.objects.create(name="Org A")


@pytest.fixture
def org_b(db) -> Organization:
    return Organization.objects.create(name="Org B")


@pytest.fixture
def key_a(org_a) -> str:
    return api_key_create(organization=org_a, name="worker-a")[1]


@pytest.fixture
def client_a(key_a) -> APIClient:
    return bearer_client(key_a)


@pytest.fixture
def client_b(org_b) -> APIClient:
    return bearer_client(api_key_create(organization=org_b, name="worker-b")[1])


@pytest.fixture
def anonymous_client(db) -> APIClient:
    """A client without credentials. With database access: on PostgreSQL the tenancy middleware runs
    every /api/ request in a transaction, signed in or not (on SQLite it does not, so a test without
    access would pass there and fail on PostgreSQL)."""
    return APIClient()


@pytest.fixture
def make_flow():
    def make(organization: Organization, **fields: Any) -> FlowExecution:
        fields.setdefault("flow_name", "ingest")
        return flow_execution_create(organization_id=organization.id, **fields)[0]

    return make


@pytest.fixture
def flow_a(org_a, make_flow) -> FlowExecution:
    return make_flow(org_a, flow_version=3)


@pytest.fixture
def flow_b(org_b, make_flow) -> FlowExecution:
    return make_flow(org_b)


@pytest.fixture
def make_output():
    def make(flow_execution: FlowExecution, **fields: Any) -> TaskOutput:
        fields.setdefault("task_name", "extract")
        fields.setdefault("summary", {"pages": 1})
        return task_output_create(
            organization_id=flow_execution.organization_id, flow_execution_id=flow_execution.id, **fields
        )[0]

    return make
