"""What a create costs in SQL round trips, counted on the wire, and what a database restart costs.

Every round trip to PostgreSQL adds its network latency to a worker's create, whatever the queries
cost: on a database a millisecond away, ten round trips are ten milliseconds before any work. So the
creates here go to a real daphne whose DATABASE_URL points at a counting proxy (tests/e2e/pg_proxy.py),
and fail above ROUND_TRIP_BUDGET, listing the statements of each round trip so that whoever breaks the
budget sees what to cut.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import pytest
from django.db import connection

from tests.e2e import servers
from tests.e2e.pg_proxy import PgProxy, RoundTrip
from tests.e2e.servers import DaphneServer

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# Round trips to PostgreSQL per create of a task output, connection checkout to commit included: the
# INSERT's one statement (no BEGIN, no COMMIT: task_outputs.services), and the key's lookup when the
# server's cache of it has run out (at most every API_KEY_CACHE_SECONDS).
ROUND_TRIP_BUDGET = 2
# A retry with the same id and payload comes only after a worker lost a response, so it may pay for
# what the first create did not: after the INSERT that inserts nothing, one transaction (BEGIN, scope,
# the flow execution, the stored row to compare the payload against, COMMIT). No more than that.
RETRY_ROUND_TRIP_BUDGET = 6
CREATES = 20
# The first requests of a server open its pool's connections, fill its caches and, on the second run
# of a statement on a connection, prepare it on the server (one extra round trip, once per connection):
# not what a create costs once the server runs. Enough creates that every pooled connection has seen
# each statement twice.
WARM_UP = 12


def database_url_through(proxy: PgProxy, **options: str) -> str:
    """The servers' usual DATABASE_URL (the test database, as the runtime role), via `proxy`.

    Without SSL or GSS encryption: the proxy must read the protocol, so it declines both anyway,
    and asking only costs every new connection an extra exchange.
    """
    url = urlsplit(servers.shared_database_url())
    auth = url.netloc.rpartition("@")[0]
    query = urlencode({"sslmode": "disable", "gssencmode": "disable", **options})
    return urlunsplit((url.scheme, f"{auth}@{proxy.host}:{proxy.port}", url.path, query, ""))


@pytest.fixture(scope="module")
def pg_proxy(django_db_setup):
    settings = connection.settings_dict
    with PgProxy(settings["HOST"] or "localhost", int(settings["PORT"] or 5432)) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def counted_server(pg_proxy):
    # API_RATE_LIMIT="": the rate limit counts in the cache (Redis or memory), never in SQL, so it
    # changes no count here; off, it cannot turn a long run of creates into 429s either.
    with DaphneServer(DATABASE_URL=database_url_through(pg_proxy), API_RATE_LIMIT="") as server:
        yield server


@pytest.fixture
def api(counted_server, tenant):
    organization_id, key = tenant
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=counted_server.url, headers=headers, timeout=10) as client:  # keep-alive
        flow = client.post("/api/v1/flow-executions", json={"organization_id": organization_id, "flow_name": "count"})
        assert flow.status_code == 201, flow.text
        task = client.post(  # for the creates that name a task execution
            "/api/v1/task-executions",
            json={"organization_id": organization_id, "flow_execution_id": flow.json()["id"], "task_name": "t"},
        )
        assert task.status_code == 201, task.text
        client.organization_id = organization_id
        client.flow_execution_id = flow.json()["id"]
        client.task_execution_id = task.json()["id"]
        yield client


def output_body(api: httpx.Client, **fields) -> dict:
    return {
        "organization_id": api.organization_id,
        "flow_execution_id": api.flow_execution_id,
        "task_name": "extract",
        "summary": {"pages": 1},
        "status": "completed",
        **fields,
    }


def counted(proxy: PgProxy, send: Callable[[], httpx.Response]) -> tuple[httpx.Response, list[RoundTrip]]:
    """`send()`'s response and the round trips it cost, up to the last statement of the request: the
    server may still be talking to the database (returning its connection to the pool) after it
    answered, so the count waits until the database traffic stops."""
    proxy.wait_until_quiet(quiet=0.1)
    proxy.reset()
    response = send()
    proxy.wait_until_quiet(quiet=0.1)
    return response, proxy.round_trips


def over_budget(what: str, costs: list[list[RoundTrip]], budget: int) -> str:
    """The failure message: every create's count, and the statements of the dearest one."""
    dearest = max(costs, key=len)
    lines = [
        f"{what} cost {max(map(len, costs))} SQL round trips at most (budget: {budget}); "
        f"per request: {[len(trips) for trips in costs]}.",
        "The round trips of the dearest one ([proxied connection, Q: simple query, S: Sync of an extended query];"
        " an empty query is psycopg_pool's check of a connection before lending it):",
        *(f"  {number}. {trip}" for number, trip in enumerate(dearest, 1)),
    ]
    return "\n".join(lines)


VARIANTS: dict[str, Callable[[httpx.Client], dict]] = {
    "server_chosen_id": lambda api: {},
    "client_chosen_id": lambda api: {"id": str(uuid.uuid4())},
    "task_execution": lambda api: {"task_execution_id": api.task_execution_id},
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_create_costs_at_most_the_round_trip_budget_to_postgresql(api, pg_proxy, variant):
    def create() -> httpx.Response:
        return api.post("/api/v1/task-outputs", json=output_body(api, **VARIANTS[variant](api)))

    for _ in range(WARM_UP):
        assert create().status_code == 201
    costs = []
    for _ in range(CREATES):
        response, round_trips = counted(pg_proxy, create)
        assert response.status_code == 201, response.text
        costs.append(round_trips)

    most = max(map(len, costs))
    assert most <= ROUND_TRIP_BUDGET, over_budget(f"A create ({variant})", costs, ROUND_TRIP_BUDGET)


def test_an_idempotent_retry_answers_200_within_a_looser_round_trip_budget(api, pg_proxy):
    body = output_body(api, id=str(uuid.uuid4()))
    assert api.post("/api/v1/task-outputs", json=body).status_code == 201
    for _ in range(WARM_UP):
        assert api.post("/api/v1/task-outputs", json=body).status_code == 200
    costs = []
    for _ in range(CREATES):
        response, round_trips = counted(pg_proxy, lambda: api.post("/api/v1/task-outputs", json=body))
        assert response.status_code == 200, response.text
        costs.append(round_trips)

    most = max(map(len, costs))
    print(f"An idempotent retry costs {most} SQL round trips.")  # shown with -rP
    assert most <= RETRY_ROUND_TRIP_BUDGET, over_budget("An idempotent retry", costs, RETRY_ROUND_TRIP_BUDGET)


# --- a database restart ----------------------------------------------------------------------------


def server_backends(cursor, application_name: str) -> list[int]:
    cursor.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND usename = %s"
        " AND application_name = %s AND pid <> pg_backend_pid()",
        [servers.RUNTIME_ROLE, application_name],
    )
    return [pid for (pid,) in cursor.fetchall()]


def wait_for_pool(application_name: str, size: int) -> None:
    """Until the server holds `size` connections: its pool opens them in the background."""
    deadline = time.monotonic() + 10
    with connection.cursor() as cursor:
        while len(server_backends(cursor, application_name)) < size:
            assert time.monotonic() < deadline, f"the server's pool did not open {size} connections"
            time.sleep(0.05)


def terminate_server_connections(application_name: str) -> int:
    """What a database restart does to the server's pool: every connection it holds dies. Only this
    test's server's (by application_name), so that the session's other servers keep theirs. Returns
    once the backends are gone, so that the next request cannot slip in while one is still dying."""
    with connection.cursor() as cursor:
        pids = server_backends(cursor, application_name)
        cursor.execute("SELECT pid FROM unnest(%s::int[]) pid WHERE pg_terminate_backend(pid)", [pids])
        killed = [pid for (pid,) in cursor.fetchall()]
        deadline = time.monotonic() + 10
        while True:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [killed])
            if cursor.fetchone()[0] == 0:
                return len(killed)
            assert time.monotonic() < deadline, f"backends {killed} did not exit"
            time.sleep(0.05)


# The pool's size when the database restarts: the default minimum (2), and what a busy server keeps
# after a burst (the pool grows up to DB_POOL_MAX_SIZE, 20, and keeps idle connections for minutes).
# Every connection in the pool is dead after a restart; the next request must not pay for each.
@pytest.mark.parametrize("pool_size", [2, 8], ids=["pool_of_2", "pool_of_8"])
def test_a_database_restart_costs_no_request_made_after_it(tenant, pool_size):
    """docs/configuration.md: "a database restart costs the requests in flight at most, never later ones".
    Straight to PostgreSQL, no proxy: nothing between the pool and the database to blame or to help."""
    organization_id, key = tenant
    application_name = f"superai_flow_restart_test_{pool_size}"
    url = servers.shared_database_url() + "?" + urlencode({"application_name": application_name})
    with (
        DaphneServer(DATABASE_URL=url, API_RATE_LIMIT="", DB_POOL_MIN_SIZE=str(pool_size)) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api,
    ):
        flow = api.post("/api/v1/flow-executions", json={"organization_id": organization_id, "flow_name": "restart"})
        assert flow.status_code == 201, flow.text
        body = {"organization_id": organization_id, "flow_execution_id": flow.json()["id"], "task_name": "t",
                "summary": {"pages": 1}, "status": "completed"}  # fmt: skip

        def create() -> httpx.Response:
            return api.post("/api/v1/task-outputs", json=body)

        def read() -> httpx.Response:
            return api.get("/api/v1/task-outputs", params={"flow_execution_id": flow.json()["id"]})

        # Two restarts: one followed first by a create, one by a read. Each request on its own.
        answers = []
        for first, then in [(create, read), (read, create)]:
            assert create().status_code == 201 and read().status_code == 200
            wait_for_pool(application_name, pool_size)
            assert terminate_server_connections(application_name) >= pool_size
            for request in (first, then):
                started = time.monotonic()
                response = request()
                answers.append((request.__name__, response, time.monotonic() - started))

        statuses = [(name, response.status_code) for name, response, _ in answers]
        expected = [("create", 201), ("read", 200), ("read", 200), ("create", 201)]
        report = "\n".join(
            f"{name} after the restart: {response.status_code} in {seconds:.1f} s {response.text[:200]}"
            for name, response, seconds in answers
        )
        assert statuses == expected, f"{report}\n--- server log ---\n{server.output()[-4000:]}"
