"""End to end over HTTP against a real daphne process."""

from __future__ import annotations

import socket
import time
import uuid
from unittest.mock import ANY

import httpx
import pytest

from superai_flow.organizations.models import APIKey
from superai_flow.organizations.services import api_key_revoke
from tests.e2e.servers import DaphneServer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def api(daphne_server, tenant):
    organization_id, key = tenant
    with httpx.Client(base_url=daphne_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
        client.organization_id = organization_id
        yield client


def test_a_worker_creates_and_reads_back_a_task_output(api):
    flow = api.post("/api/v1/flow-executions", json={"organization_id": api.organization_id, "flow_name": "ingest"})
    assert flow.status_code == 201, flow.text
    body = {
        "id": str(uuid.uuid4()),
        "organization_id": api.organization_id,
        "flow_execution_id": flow.json()["id"],
        "task_name": "extract-text",
        "status": "completed",
        "summary": {"pages": 10, "word_count": 5000},
        "output": {"text": "…"},
        "tags": ["pdf", "pdf", "ocr"],
    }

    created = api.post("/api/v1/task-outputs", json=body, headers={"X-Request-ID": "e2e-create"})
    assert created.status_code == 201, created.text
    assert created.headers["X-Request-ID"] == "e2e-create"
    assert created.json()["tags"] == ["pdf", "ocr"]

    read = api.get(created.headers["Location"])
    assert read.status_code == 200 and read.json() == created.json()

    listed = api.get("/api/v1/task-outputs/", params={"flow_execution_id": flow.json()["id"], "summary.pages__gte": 10})
    assert [row["id"] for row in listed.json()["results"]] == [body["id"]]

    retried = api.post("/api/v1/task-outputs", json=body)
    assert retried.status_code == 200 and retried.json() == created.json()

    counts = api.get(f"/api/v1/flow-executions/{flow.json()['id']}").json()
    assert counts["task_output_count"] == 1 and counts["task_output_counts"]["completed"] == 1


def test_errors_over_the_wire_are_json_envelopes(api):
    bad_json = api.post("/api/v1/task-outputs", content=b"{nope", headers={"Content-Type": "application/json"})
    unauthenticated = httpx.get(str(api.base_url) + "/api/v1/task-outputs")
    missing = api.get("/api/v1/task-outputs/" + str(uuid.uuid4()))

    for response, status, code in [(bad_json, 400, "parse_error"), (unauthenticated, 401, "not_authenticated"),
                                   (missing, 404, "not_found")]:  # fmt: skip
        assert response.status_code == status
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == code
        assert response.json()["request_id"] == response.headers["X-Request-ID"]


def test_an_unreachable_database_answers_503():
    dead = "postgres://postgres@127.0.0.1:1/nothing"
    with DaphneServer(DATABASE_URL=dead, DB_POOL_TIMEOUT="1", DB_CONNECT_TIMEOUT="1") as server:
        response = httpx.get(server.url + "/api/v1/task-outputs", headers={"Authorization": "Bearer sfk_" + "a" * 43})
        alive = httpx.get(server.url + "/healthz")
        ready = httpx.get(server.url + "/readyz")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response.headers["Retry-After"] == "5"
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}  # alive: nothing to restart
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable"  # out of rotation
    assert ready.json()["checks"]["database"]["ok"] is False and ready.json()["checks"]["database"]["error"]
    assert ready.json()["checks"]["channel_layer"]["ok"] is True


def test_a_hung_database_answers_readyz_503_within_its_timeout():
    """A database that accepts connections and never answers: /readyz gives up after 2 s."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        hung = f"postgres://postgres@127.0.0.1:{silent.getsockname()[1]}/nothing"
        with DaphneServer(DATABASE_URL=hung) as server:
            alive = httpx.get(server.url + "/healthz", timeout=1)
            started = time.monotonic()
            ready = httpx.get(server.url + "/readyz", timeout=10)
            took = time.monotonic() - started

    assert alive.status_code == 200
    assert ready.status_code == 503 and took < 4  # 2 s, where the pool alone would wait 5 (DB_POOL_TIMEOUT)
    assert ready.json()["checks"]["database"] == {"ok": False, "ms": ANY, "error": "no answer within 2 s"}


def test_the_health_endpoints_answer_over_http(daphne_server):
    alive = httpx.get(daphne_server.url + "/healthz")
    ready = httpx.get(daphne_server.url + "/readyz")

    assert alive.status_code == 200 and alive.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    assert {name: check["ok"] for name, check in ready.json()["checks"].items()} == {
        "database": True,
        "channel_layer": True,
    }


def test_every_execution_endpoint_answers_over_http(api):
    org = api.organization_id
    flow = api.post("/api/v1/flow-executions", json={"organization_id": org, "flow_name": "cycle"}).json()
    task = api.post(
        "/api/v1/task-executions", json={"organization_id": org, "flow_execution_id": flow["id"], "task_name": "t"}
    ).json()
    output = api.post(
        "/api/v1/task-outputs",
        json={"organization_id": org, "flow_execution_id": flow["id"], "task_execution_id": task["id"],
              "task_name": "t", "summary": {}, "status": "completed"},
    ).json()  # fmt: skip

    steps = [
        ("GET", "/api/v1/task-executions", None, 200),
        ("GET", f"/api/v1/task-executions/{task['id']}", None, 200),
        ("PATCH", f"/api/v1/task-executions/{task['id']}", {"status": "running", "retries": 1}, 200),
        ("PATCH", f"/api/v1/task-outputs/{output['id']}", {"status": "stale"}, 200),
        ("PATCH", f"/api/v1/task-outputs/{output['id']}", {"status": "completed"}, 409),
        ("DELETE", f"/api/v1/task-outputs/{output['id']}", None, 204),
        ("GET", f"/api/v1/task-outputs/{output['id']}", None, 404),
        ("PATCH", f"/api/v1/flow-executions/{flow['id']}", {"status": "running"}, 200),
        ("DELETE", f"/api/v1/flow-executions/{flow['id']}", None, 204),
        ("GET", f"/api/v1/flow-executions/{flow['id']}", None, 404),
        ("GET", f"/api/v1/task-executions/{task['id']}", None, 404),
    ]
    for method, path, body, status in steps:
        response = api.request(method, path, json=body)
        assert response.status_code == status, (method, path, response.text)
        assert response.headers["X-Request-ID"]


@pytest.mark.redis
def test_servers_share_one_rate_limit_through_redis(tenant):
    _, key = tenant
    headers = {"Authorization": f"Bearer {key}"}
    with DaphneServer(API_RATE_LIMIT="4/minute") as one, DaphneServer(API_RATE_LIMIT="4/minute") as other:
        answers = [httpx.get(f"{server.url}/api/v1/task-outputs", headers=headers).status_code
                   for server in (one, other, one, other, one)]  # fmt: skip

    assert answers == [200, 200, 200, 200, 429]


def test_a_key_revoked_elsewhere_stops_working_within_5_seconds(api, daphne_server):
    """The server trusts a key it checked for at most API_KEY_CACHE_SECONDS (5): the contract's bound."""
    assert api.get("/api/v1/task-outputs").status_code == 200
    api_key_revoke(api_key=APIKey.objects.get(organization_id=api.organization_id))  # in this process, not the server's
    revoked = time.monotonic()

    while api.get("/api/v1/task-outputs").status_code == 200:
        assert time.monotonic() - revoked < 5.5, "the revoked key still works after 5 s"
        time.sleep(0.1)
    assert api.get("/api/v1/task-outputs").status_code == 401
