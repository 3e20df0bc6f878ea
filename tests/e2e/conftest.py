from __future__ import annotations

import pytest

from superai_flow.organizations.models import Organization
from superai_flow.organizations.services import api_key_create
from tests.e2e import servers
from tests.e2e.servers import DaphneServer, serve_test_database


@pytest.fixture(scope="session", autouse=True)
def servers_run_as_the_runtime_role(runtime_role):
    servers.RUNTIME_ROLE = runtime_role


@pytest.fixture(scope="session")
def daphne_server(django_db_setup):
    """One daphne process for the session, on the test database (tests commit with transaction=True).

    Starting it needs no database access in this process; and this fixture must not unblock it: it
    would stay unblocked for every later test of the session, so that a test lacking the django_db
    mark passed after the end-to-end tests and failed alone."""
    with DaphneServer() as server:
        yield server


@pytest.fixture
def tenant(transactional_db) -> tuple[str, str]:
    """(organization id, API key) of a fresh organization, committed so that servers see it."""
    organization = Organization.objects.create(name="E2E")
    return str(organization.id), api_key_create(organization=organization, name="e2e")[1]


@pytest.fixture(autouse=True)
def fast_password_hashing():
    """Overrides the suite's fast hasher: the servers these tests start check passwords with the defaults."""


@pytest.fixture
def serve(tmp_path):
    """`make serve` with two processes on the test database, answering; stopped afterwards."""
    server = serve_test_database(tmp_path)
    try:
        server.wait_until_answering()
        yield server
    finally:
        server.stop()
