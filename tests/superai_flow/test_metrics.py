"""GET /metrics: access, the documented series, what requests, creates, WebSockets and notifications count,
and the multiprocess mode that `make serve` uses (tests/e2e/test_metrics.py runs it for real)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from superai_flow import metrics, notifications
from tests.e2e.servers import PROJECT_DIR, free_port
from tests.helpers import error_of
from tests.live.conftest import communicator, open_socket

TOKEN = "metrics-token-0123456789abcdef"
ELSEWHERE = "203.0.113.7"  # not loopback (TEST-NET-3)
CREATE = ("/api/v1/task-outputs", "POST", "201")

DOCUMENTED = {
    "superai_flow_http_requests": "counter",
    "superai_flow_http_request_duration_seconds": "histogram",
    "superai_flow_task_outputs_created": "counter",
    "superai_flow_live_clients": "gauge",
    "superai_flow_notifications_sent": "counter",
    "superai_flow_notifications_retried": "counter",
    "superai_flow_notifications_dropped": "counter",
    "superai_flow_notifications_queued": "gauge",
    "superai_flow_db_pool_connections_in_use": "gauge",
    "superai_flow_db_pool_connections_open": "gauge",
    "superai_flow_db_pool_connections_max": "gauge",
    "superai_flow_db_pool_requests_waiting": "gauge",
    "superai_flow_server_processes": "gauge",
}


def parse(text: str) -> tuple[dict[str, str], dict[tuple, float]]:
    """({family: type}, {(sample name, sorted label pairs): value}) of an exposition."""
    types, samples = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return types, samples


def scrape(client) -> dict[tuple, float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    return parse(response.content.decode())[1]


def requests_of(samples, route: str, method: str, status: str) -> float:
    return samples.get(
        ("superai_flow_http_requests_total", (("method", method), ("route", route), ("status", status))), 0
    )


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0)


@pytest.fixture
def own_dispatcher(monkeypatch, settings):
    """A dispatcher of the test's own (on the in-memory layer), so none stays tied to a closed loop."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    fresh = notifications.Dispatcher(max_queue=100, send_timeout=1, max_age=5, drain_seconds=0)
    monkeypatch.setattr(notifications, "_dispatcher", fresh)
    yield fresh
    fresh.close()


# --- The endpoint --------------------------------------------------------------------------------


def test_metrics_from_loopback_is_prometheus_text_with_the_documented_series(client):
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "no-cache" in response["Cache-Control"]
    types, samples = parse(response.content.decode())
    assert {name: types[name] for name in DOCUMENTED if name in types} == {
        name: kind for name, kind in DOCUMENTED.items() if name in types
    }
    assert set(DOCUMENTED) <= set(types), set(DOCUMENTED) - set(types)
    assert ("superai_flow_task_outputs_created_total", ()) in samples
    assert ("superai_flow_live_clients", (("transport", "websocket"),)) in samples
    assert value(samples, "superai_flow_server_processes") == 1
    assert ("superai_flow_notifications_queued", ()) in samples
    for name in ("sent", "retried", "dropped"):
        assert (f"superai_flow_notifications_{name}_total", ()) in samples
    # The first scrape is itself counted once it is answered: the second one sees it.
    assert requests_of(scrape(client), "/metrics", "GET", "200") >= 1


def test_scrapers_may_ask_for_openmetrics(client):
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().endswith("# EOF\n")


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"])
def test_any_loopback_address_needs_no_token(client, settings, address):
    settings.METRICS_TOKEN = TOKEN

    assert client.get("/metrics", REMOTE_ADDR=address).status_code == 200


def test_elsewhere_without_a_token_configured_is_forbidden_in_the_error_envelope(client, settings):
    settings.METRICS_TOKEN = None

    error_of(client.get("/metrics", REMOTE_ADDR=ELSEWHERE), 403, "permission_denied")
    error_of(client.get("/metrics", REMOTE_ADDR=ELSEWHERE, HTTP_AUTHORIZATION="Bearer "), 403, "permission_denied")


def test_elsewhere_the_token_opens_metrics(client, settings):
    settings.METRICS_TOKEN = TOKEN

    error_of(client.get("/metrics", REMOTE_ADDR=ELSEWHERE), 403, "permission_denied")
    response = client.get("/metrics", REMOTE_ADDR=ELSEWHERE, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200 and b"superai_flow_http_requests" in response.content
    assert client.get("/metrics", REMOTE_ADDR=ELSEWHERE, HTTP_AUTHORIZATION=f"bearer {TOKEN}").status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer wrong-token-0123456789abcdef", f"Basic {TOKEN}", TOKEN, ""],
)
def test_a_wrong_token_is_forbidden(client, settings, authorization):
    settings.METRICS_TOKEN = TOKEN

    error_of(client.get("/metrics", REMOTE_ADDR=ELSEWHERE, HTTP_AUTHORIZATION=authorization), 403, "permission_denied")


def test_loopback_can_be_made_to_need_the_token_too(client, settings):
    """Behind a reverse proxy on the same machine every request comes from loopback."""
    settings.METRICS_ALLOW_LOOPBACK = False
    settings.METRICS_TOKEN = TOKEN

    error_of(client.get("/metrics"), 403, "permission_denied")
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_only_get(client):
    assert client.post("/metrics").status_code == 405


# --- What is counted ------------------------------------------------------------------------------


def test_a_create_counts_the_output_and_the_request_for_its_route_and_status(
    client, client_a, flow_a, django_capture_on_commit_callbacks
):
    before = scrape(client)
    body = {"organization_id": str(flow_a.organization_id), "flow_execution_id": str(flow_a.id),
            "task_name": "extract", "summary": {"pages": 1}}  # fmt: skip

    with django_capture_on_commit_callbacks(execute=True):
        assert client_a.post("/api/v1/task-outputs", body).status_code == 201
        assert client_a.post("/api/v1/task-outputs", body).status_code == 201
    after = scrape(client)

    created = "superai_flow_task_outputs_created_total"
    assert value(after, created) - value(before, created) == 2
    assert requests_of(after, *CREATE) - requests_of(before, *CREATE) == 2
    route = {"route": "/api/v1/task-outputs", "method": "POST"}
    count = "superai_flow_http_request_duration_seconds_count"
    assert value(after, count, **route) - value(before, count, **route) == 2
    # Every bucket carries the route; the +Inf one holds both requests.
    buckets = {dict(labels)["le"] for name, labels in after if name.endswith("_bucket") and dict(labels).get("route")
               == "/api/v1/task-outputs" and dict(labels)["method"] == "POST"}  # fmt: skip
    assert {"0.005", "0.1", "+Inf"} <= buckets and len(buckets) == len(metrics.LATENCY_BUCKETS) + 1
    inf = value(after, "superai_flow_http_request_duration_seconds_bucket", le="+Inf", **route)
    assert inf - value(before, "superai_flow_http_request_duration_seconds_bucket", le="+Inf", **route) == 2


def test_a_create_that_rolls_back_is_not_counted(client, flow_a, make_output, django_capture_on_commit_callbacks):
    from django.db import transaction

    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        make_output(flow_a)
        transaction.set_rollback(True)

    assert value(scrape(client), "superai_flow_task_outputs_created_total") == value(
        before, "superai_flow_task_outputs_created_total"
    )


def test_routes_are_url_patterns_never_raw_paths(client, client_a, db):
    before = scrape(client)
    for _ in range(3):
        client_a.get(f"/api/v1/task-outputs/{uuid.uuid4()}")
    client.get(f"/no-such-page-{uuid.uuid4()}")
    client.generic("BREW", "/healthz")
    after = scrape(client)

    detail = "/api/v1/task-outputs/{pk}"
    assert requests_of(after, detail, "GET", "404") - requests_of(before, detail, "GET", "404") == 3
    assert requests_of(after, "unmatched", "GET", "404") - requests_of(before, "unmatched", "GET", "404") == 1
    assert requests_of(after, "/healthz", "other", "405") - requests_of(before, "/healthz", "other", "405") == 1
    routes = {dict(labels)["route"] for name, labels in after if name == "superai_flow_http_requests_total"}
    assert not [route for route in routes if "no-such-page" in route or re.search(r"[0-9a-f]{8}-", route)]


@pytest.mark.parametrize(
    ("pattern", "label"),
    [
        ("", "/"),
        ("healthz", "/healthz"),
        ("api/v1/task-outputs/?$", "/api/v1/task-outputs"),
        ("api/v1/task-outputs/(?P<pk>[^/.]+)/?$", "/api/v1/task-outputs/{pk}"),
        ("executions/<uuid:pk>/", "/executions/{pk}/"),
        ("executions/outputs/<uuid:pk>/output.json", "/executions/outputs/{pk}/output.json"),
        ("admin/(?P<app_label>auth|task_outputs)/$", "/admin/{app_label}/"),
        ("admin/r/<int:content_type_id>/<path:object_id>/", "/admin/r/{content_type_id}/{object_id}/"),
    ],
)
def test_route_labels(pattern, label):
    assert metrics.route_label(pattern) == label


def test_notifications_sent_retried_and_dropped_are_counted(settings, own_dispatcher):
    before = scrape_values()
    own_dispatcher.submit([("metrics-test", {"type": "t.sent"})] * 3)
    wait_for(lambda: own_dispatcher.counters["sent"] == 3)
    assert scrape_values()["sent"] - before["sent"] == 3

    # Nothing listens on that port: retried, then dropped once too old (as tests/live/test_dispatcher.py).
    hosts = [{"address": f"redis://127.0.0.1:{free_port()}/0", "socket_connect_timeout": 1}]
    backend = "superai_flow.channel_layer.BatchingRedisPubSubChannelLayer"
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": backend, "CONFIG": {"hosts": hosts}}}
    failing = notifications.Dispatcher(max_queue=10, send_timeout=1, max_age=0.5, drain_seconds=0)
    try:
        failing.submit([("metrics-test", {"type": "t.lost"})] * 2)
        wait_for(lambda: failing.counters["dropped"] == 2)
    finally:
        failing.close()
    after = scrape_values()
    assert after["dropped"] - before["dropped"] == 2
    assert after["retried"] - before["retried"] == failing.counters["retried"] >= 2


def scrape_values() -> dict[str, float]:
    return {name: metrics.REGISTRY.get_sample_value(f"superai_flow_notifications_{name}_total") for name in
            ("sent", "retried", "dropped")}  # fmt: skip


def wait_for(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_the_queue_depth_is_this_processs_dispatcher_queue(client, own_dispatcher):
    own_dispatcher._current = [object()] * 4  # a batch being sent: queued until sent or dropped

    assert value(scrape(client), "superai_flow_notifications_queued") == 4
    own_dispatcher._current = []
    assert value(scrape(client), "superai_flow_notifications_queued") == 0


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_connected_websocket_clients_are_counted_until_they_leave(own_dispatcher, key_a):
    gauge = metrics.WEBSOCKET_CLIENTS
    before = gauge._value.get()

    sockets = [await open_socket("/ws/task-outputs/summaries/", key=key_a) for _ in range(2)]
    assert gauge._value.get() == before + 2
    refused = communicator("/ws/task-outputs/summaries/", key="not-a-key")
    await refused.connect()
    await refused.receive_output(timeout=5)  # the close
    assert gauge._value.get() == before + 2
    await refused.disconnect()

    for socket in sockets:
        await socket.disconnect()
    assert gauge._value.get() == before


def test_database_pool_gauges_on_postgresql_and_none_on_sqlite(client, db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        samples = scrape(client)
    pool = {name: labels for name, labels in samples if name.startswith("superai_flow_db_pool_")}
    if connection.vendor != "postgresql":
        assert pool == {}  # SQLite has no pool: nothing is exported
        return
    default = (("database", "default"),)
    assert value(samples, "superai_flow_db_pool_connections_in_use", database="default") >= 1  # this test's own
    assert value(samples, "superai_flow_db_pool_connections_open", database="default") >= 1
    assert value(samples, "superai_flow_db_pool_connections_max", database="default") == connection.pool.max_size
    assert ("superai_flow_db_pool_requests_waiting", default) in samples


# --- Multiprocess mode (make serve) --------------------------------------------------------------

PROCESS = textwrap.dedent(
    """
    import os, sys
    import django
    os.environ["DJANGO_SETTINGS_MODULE"] = "superai_flow.settings"
    django.setup()
    from superai_flow import metrics
    metrics.start_sampler()
    metrics.TASK_OUTPUTS_CREATED.inc(int(sys.argv[1]))
    metrics.WEBSOCKET_CLIENTS.inc(int(sys.argv[2]))
    if sys.argv[3] == "killed":
        os._exit(0)  # as after SIGKILL: no clean-up at exit
    if sys.argv[3] == "scrape":
        from django.test import RequestFactory
        print(metrics.metrics(RequestFactory().get("/metrics")).content.decode())
    """
)


def test_multiprocess_mode_adds_up_every_process_and_forgets_the_gauges_of_dead_ones(tmp_path):
    """Counters of processes gone stay in the sum; their connected clients do not, however they ended."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, "-c", PROCESS, *args], cwd=PROJECT_DIR, env=env, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("2", "5", "killed")
    run("3", "7", "exits")
    samples = parse(run("4", "1", "scrape"))[1]

    assert value(samples, "superai_flow_task_outputs_created_total") == 2 + 3 + 4
    assert value(samples, "superai_flow_live_clients", transport="websocket") == 1
    assert value(samples, "superai_flow_server_processes") == 1
    assert not list(directory.glob("gauge_livesum_*.db"))  # the scraper's own went at its exit too
    assert len(list(directory.glob("counter_*.db"))) == 3


def test_a_multiprocess_directory_that_does_not_exist_stops_start_up(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "missing")}
    done = subprocess.run([sys.executable, "-c", PROCESS, "0", "0", "exits"], cwd=PROJECT_DIR, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip

    assert done.returncode != 0
    assert "PROMETHEUS_MULTIPROC_DIR" in done.stderr and "is not a directory" in done.stderr
