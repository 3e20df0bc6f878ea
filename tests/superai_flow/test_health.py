"""The health endpoints: /healthz (alive, touches nothing) and /readyz (the database and the channel layer)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import pytest
import redis as redis_py
from channels.layers import InMemoryChannelLayer
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper

from superai_flow import views
from tests.e2e.servers import RedisServer, free_port
from tests.helpers import bearer_client

BATCHING = "superai_flow.channel_layer.BatchingRedisPubSubChannelLayer"  # what settings use with REDIS_URL


def redis_layer(url: str) -> dict:
    config = {"hosts": [{"address": url, "socket_connect_timeout": 2}], "prefix": "readyz_test"}
    return {"default": {"BACKEND": BATCHING, "CONFIG": config}}


@pytest.fixture(autouse=True)
def fresh_checks():
    """Each test starts with checks that last passed, and waits for the runs it started: a later
    /readyz would otherwise wait for a run of this test's (one run at a time), against its settings."""
    for check in views.READINESS_CHECKS.values():
        check._last_error = None
    yield
    for check in views.READINESS_CHECKS.values():
        if check._run is not None:
            check._run.result(timeout=30)


@pytest.fixture
def silent_socket():
    """A port that accepts connections (the kernel's backlog) and never answers: a hung Redis."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def ready(client):
    response = client.get("/readyz")
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


# --- /healthz ------------------------------------------------------------------------------------


def test_healthz_answers_without_the_database_or_redis(client, settings):
    """No database access is allowed here (no django_db mark), and the layer and cache point at nothing."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings.CHANNEL_LAYERS = redis_layer(dead)
    settings.REDIS_URL = dead

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-store" in response["Cache-Control"]


def test_healthz_makes_no_queries(client, db, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert client.get("/healthz").status_code == 200


@pytest.mark.postgres
def test_probes_of_a_signed_in_browser_open_no_tenant_transaction(client, django_user_model, django_assert_num_queries):
    client.force_login(django_user_model.objects.create_user("prober"))
    with django_assert_num_queries(0):  # the session and user are read only when a view asks for them
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_healthz_answers_when_the_database_is_unreachable(client, db, monkeypatch):
    def unreachable(self):
        raise OperationalError("connection refused")

    with monkeypatch.context() as patch:  # undone before the test database's rollback needs a connection
        patch.setattr(BaseDatabaseWrapper, "ensure_connection", unreachable)
        response = client.get("/healthz")

    assert response.status_code == 200


# --- /readyz -------------------------------------------------------------------------------------


def test_readyz_checks_the_database_and_the_channel_layer(client, db):
    status, body = ready(client)

    assert status == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "channel_layer"}
    for check in body["checks"].values():
        assert check["ok"] is True and "error" not in check
        assert isinstance(check["ms"], int | float) and 0 <= check["ms"] < 2000
        assert round(check["ms"], 1) == check["ms"]
    assert set(body["notifications"]) == {"queued", "sent", "retried", "dropped"}


def test_readyz_is_503_when_the_database_is_unreachable(client, db, monkeypatch, caplog):
    def unreachable(self):
        raise OperationalError('connection to server at "db.internal", port 5432 failed: Connection refused')

    with monkeypatch.context() as patch, caplog.at_level(logging.INFO):
        patch.setattr(BaseDatabaseWrapper, "ensure_connection", unreachable)
        answers = [ready(client), ready(client)]
    with caplog.at_level(logging.INFO):
        recovered = ready(client)

    for status, body in answers:
        assert status == 503 and body["status"] == "unavailable"
        assert body["checks"]["database"]["ok"] is False
        assert body["checks"]["database"]["error"] == "OperationalError"
        assert isinstance(body["checks"]["database"]["ms"], int | float)
        assert body["checks"]["channel_layer"]["ok"] is True
        assert "db.internal" not in str(body)  # the details (hosts, users) go to the log only
    assert recovered[0] == 200
    # Logged when the check started failing and when it passed again: not per request, and not by
    # Django as an error ("Service Unavailable: /readyz") either.
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "superai_flow.views"] == [
        (
            "WARNING",
            'Readiness check database fails: OperationalError: connection to server at "db.internal", '
            "port 5432 failed: Connection refused",
        ),
        ("INFO", "Readiness check database passes again"),
    ]
    assert not [r for r in caplog.records if r.name == "django.request"]


def test_a_hung_database_answers_503_within_the_timeout_and_ties_up_one_thread(client, db, monkeypatch):
    monkeypatch.setattr(views, "READINESS_CHECK_TIMEOUT_SECONDS", 0.3)
    released = threading.Event()
    calls = []

    def hung():
        calls.append(1)
        released.wait(30)

    monkeypatch.setattr(views.READINESS_CHECKS["database"], "probe", hung)
    started = time.monotonic()
    try:
        answers = [ready(client) for _ in range(3)]
        elapsed = time.monotonic() - started
    finally:
        released.set()

    for status, body in answers:
        assert status == 503
        database = body["checks"]["database"]
        assert (database["ok"], database["error"]) == (False, "no answer within 0.3 s")
        assert 250 <= database["ms"] < 2000
        assert body["checks"]["channel_layer"]["ok"] is True
    assert elapsed < 3 * 0.3 + 2  # each gave up after 0.3 s (the probe would have hung for 30)
    assert len(calls) == 1  # the later requests waited for the run still going, they did not start more


def test_readyz_is_503_when_redis_is_unreachable(client, db, settings):
    settings.CHANNEL_LAYERS = redis_layer(f"redis://127.0.0.1:{free_port()}/0")

    status, body = ready(client)

    assert status == 503 and body["status"] == "unavailable"
    assert body["checks"]["channel_layer"]["ok"] is False
    assert body["checks"]["channel_layer"]["error"] == "ConnectionError"
    assert body["checks"]["database"]["ok"] is True


def test_a_hung_redis_answers_503_within_the_timeout(client, db, settings, monkeypatch, silent_socket):
    monkeypatch.setattr(views, "READINESS_CHECK_TIMEOUT_SECONDS", 0.5)
    settings.CHANNEL_LAYERS = redis_layer(f"redis://127.0.0.1:{silent_socket}/0")

    started = time.monotonic()
    status, body = ready(client)

    assert time.monotonic() - started < 2.5  # gave up after 0.5 s (a silent Redis never answers)
    assert status == 503
    assert body["checks"]["channel_layer"]["ok"] is False
    assert body["checks"]["channel_layer"]["error"] == "no answer within 0.5 s"
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.redis
def test_readyz_pings_redis_and_leaves_no_connection_behind(client, db, settings):
    def pings() -> int:
        return admin.info("commandstats").get("cmdstat_ping", {}).get("calls", 0)

    with RedisServer() as redis:
        settings.CHANNEL_LAYERS = redis_layer(redis.url)
        admin = redis_py.Redis.from_url(redis.url)
        try:
            before = pings()
            answers = [ready(client) for _ in range(5)]
            deadline = time.monotonic() + 5
            while (clients := admin.info("clients")["connected_clients"]) > 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            pinged = pings() - before
        finally:
            admin.close()

    assert [status for status, _ in answers] == [200] * 5
    assert all(body["checks"]["channel_layer"]["ok"] for _, body in answers)
    assert pinged == 5
    assert clients == 1  # this test's own: each check closed what it opened


def test_other_channel_layers_are_checked_with_a_round_trip():
    asyncio.run(asyncio.wait_for(views._channel_layer_round_trip(InMemoryChannelLayer()), 2))


# --- Both ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_neither_needs_credentials_nor_minds_bad_ones(db, path):
    answers = [bearer_client("sfk_" + "x" * 43).get(path), bearer_client("").get(path)]

    assert [response.status_code for response in answers] == [200, 200]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_neither_is_rate_limited(client_a, settings, path):
    settings.API_RATE_LIMIT = "2/minute"

    assert [client_a.get(path).status_code for _ in range(5)] == [200] * 5


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_neither_logs_each_request(client, db, caplog, path):
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            assert client.get(path).status_code == 200

    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_only_get(client, db, path):
    assert client.post(path).status_code == 405
