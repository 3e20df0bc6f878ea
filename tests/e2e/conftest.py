import pytest

from tests.e2e.servers import DaphneServer


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker):
    """One daphne process for the session, on the test database (tests commit with transaction=True)."""
    with django_db_blocker.unblock(), DaphneServer() as server:
        yield server
