"""Faults under load, against `make serve`'s processes: a PostgreSQL of the test's own is stopped and
restarted, a server process is killed. Workers retry with their own ids, as the README tells them to;
an acknowledged create must never be lost, and a 201 never given for a row that is not stored."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.servers import PROJECT_DIR, MakeServe, PrivatePostgres, RedisServer, serve_test_database
from tests.e2e.test_live import new_flow, next_message, post_output, watch

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

POOL_TIMEOUT = 2  # DB_POOL_TIMEOUT of the servers: a 503 must come within this plus one second


@dataclass
class Load:
    """Workers creating task outputs with their own ids, retrying each until it is acknowledged."""

    url: str
    key: str
    organization_id: str
    flow_id: str
    acknowledged: set[str] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)
    slowest_503: float = 0.0
    answered_503_at: list[tuple[float, float]] = field(default_factory=list)  # (sent, seconds to answer)
    transport_errors: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def worker(self) -> None:
        body = {"organization_id": self.organization_id, "flow_execution_id": self.flow_id, "task_name": "load",
                "summary": {"n": 1}}  # fmt: skip
        headers = {"Authorization": f"Bearer {self.key}"}
        output_id = str(uuid.uuid4())
        while not self.stop.is_set():
            started = time.monotonic()
            try:  # a new connection each time, so that every server process gets some
                response = httpx.post(f"{self.url}/api/v1/task-outputs", json={**body, "id": output_id},
                                      headers=headers, timeout=10)  # fmt: skip
            except httpx.TransportError:
                with self.lock:
                    self.transport_errors += 1
                time.sleep(0.05)
                continue
            elapsed = time.monotonic() - started
            with self.lock:
                self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
                if response.status_code in (200, 201):
                    self.acknowledged.add(output_id)
                elif response.status_code == 503:
                    assert response.json()["error"]["code"] == "service_unavailable"
                    self.slowest_503 = max(self.slowest_503, elapsed)
                    self.answered_503_at.append((round(started, 2), round(elapsed, 2)))
            if response.status_code in (200, 201):
                output_id = str(uuid.uuid4())
            else:
                time.sleep(0.1)

    def run(self, during, workers: int = 4) -> None:
        threads = [threading.Thread(target=self.worker) for _ in range(workers)]
        for thread in threads:
            thread.start()
        try:
            during()
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(timeout=30)


def manage(env: dict[str, str], *args: str) -> str:
    run = subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run.stdout.strip().splitlines()[-1]


def psql(pg: PrivatePostgres, sql: str) -> list[str]:
    host, port = pg.server.split(":")
    run = subprocess.run(["psql", "-h", host, "-p", port, "-U", "postgres", "-d", "faults", "-XAtc", sql],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return run.stdout.split()


@pytest.fixture
def private_deployment(tmp_path):
    """A PostgreSQL of this test's own, deployed as production is (owner migrates, runtime role serves),
    with an organization, its key and a flow execution; and `make serve` on it."""
    with PrivatePostgres(cpus=None) as pg:
        host, port = pg.server.split(":")
        for sql in ("CREATE DATABASE faults", "CREATE ROLE runtime LOGIN"):
            subprocess.run(["psql", "-h", host, "-p", port, "-U", "postgres", "-XAtc", sql], check=True)
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://runtime@{pg.server}/faults",
            "DATABASE_MIGRATION_URL": f"postgres://postgres@{pg.server}/faults",
        }
        manage(env, "migrate", "--database", "owner", "--noinput")
        organization_id = manage(env, "create_organization", "faults")
        key = manage(env, "create_api_key", organization_id, "--name", "faults")
        serve = serve_test_database(tmp_path, DATABASE_URL=env["DATABASE_URL"], DB_POOL_TIMEOUT=str(POOL_TIMEOUT))
        try:
            serve.wait_until_answering()
            flow = httpx.post(f"{serve.url}/api/v1/flow-executions", headers={"Authorization": f"Bearer {key}"},
                              json={"organization_id": organization_id, "flow_name": "faults"}, timeout=10)  # fmt: skip
            assert flow.status_code == 201, flow.text
            yield pg, serve, Load(serve.url, key, organization_id, flow.json()["id"])
        finally:
            serve.stop()


def stored_ids(pg: PrivatePostgres) -> set[str]:
    return set(psql(pg, "SELECT id FROM task_outputs_taskoutput"))


def test_a_postgres_outage_under_load_answers_503_in_time_and_loses_nothing(private_deployment):
    pg, serve, load = private_deployment

    def outage() -> None:
        time.sleep(2)
        pg.stop()
        time.sleep(4)
        pg.start()
        time.sleep(6)

    load.run(outage)
    stored = stored_ids(pg)

    assert set(load.statuses) <= {200, 201, 503}, load.statuses  # never a 500
    assert load.statuses.get(503), "the outage was not seen"
    assert load.slowest_503 <= POOL_TIMEOUT + 1, sorted(load.answered_503_at, key=lambda pair: -pair[1])[:8]
    assert load.acknowledged <= stored  # no 201 for a row that is not stored
    assert len(load.acknowledged) > 20
    # Recovered without a restart: creates succeed again.
    after = httpx.post(f"{serve.url}/api/v1/task-outputs", headers={"Authorization": f"Bearer {load.key}"},
                       json={"organization_id": load.organization_id, "flow_execution_id": load.flow_id,
                             "task_name": "after", "summary": {}}, timeout=10)  # fmt: skip
    assert after.status_code == 201, after.text


def test_a_killed_server_process_under_load_loses_no_acknowledged_create(private_deployment):
    pg, serve, load = private_deployment
    victim = serve.daphnes()[0]

    def kill() -> None:
        time.sleep(2)
        os.kill(victim, signal.SIGKILL)
        time.sleep(5)

    load.run(kill)
    stored = stored_ids(pg)

    assert set(load.statuses) <= {200, 201}, load.statuses
    assert load.acknowledged <= stored
    assert len(load.acknowledged) > 20
    assert victim not in serve.daphnes() and len(serve.daphnes()) == 2, serve.output()


def test_sigterm_lets_the_requests_in_flight_finish(private_deployment):
    pg, serve, load = private_deployment
    host, port = pg.server.split(":")
    # A session that holds the task outputs' table, so that a create is in flight until it lets go.
    locker = subprocess.Popen(["psql", "-h", host, "-p", port, "-U", "postgres", "-d", "faults", "-X", "-q"],
                              stdin=subprocess.PIPE, text=True)  # fmt: skip
    locker.stdin.write("BEGIN; LOCK TABLE task_outputs_taskoutput IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3);\n")
    locker.stdin.flush()
    time.sleep(0.5)
    answer: dict = {}
    body = {"organization_id": load.organization_id, "flow_execution_id": load.flow_id, "task_name": "in-flight",
            "summary": {}}  # fmt: skip

    def create() -> None:
        answer["response"] = httpx.post(f"{serve.url}/api/v1/task-outputs", json=body, timeout=30,
                                        headers={"Authorization": f"Bearer {load.key}"})  # fmt: skip

    client = threading.Thread(target=create)
    client.start()
    time.sleep(1)  # the create now waits for the lock
    os.kill(serve.supervisord(), signal.SIGTERM)
    locker.stdin.write("COMMIT;\n")
    locker.stdin.close()
    client.join(timeout=30)
    locker.wait(timeout=30)

    assert answer["response"].status_code == 201, answer["response"].text
    assert answer["response"].json()["id"] in stored_ids(pg)
    assert serve.make.wait(timeout=40) == 0, serve.output()
    assert "finishing 1 request(s) in flight" in serve.output()


def metric(serve: MakeServe, name: str) -> float:
    text = httpx.get(f"{serve.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


@pytest.mark.asyncio
async def test_a_redis_outage_under_load_keeps_creates_and_catches_watchers_up(tmp_path, tenant):
    key = tenant[1]
    with RedisServer() as redis:
        serve = serve_test_database(tmp_path, REDIS_URL=redis.url, NOTIFY_MAX_AGE_SECONDS="2")
        try:
            serve.wait_until_answering()
            flow_id = new_flow(serve, tenant)
            async with watch(serve, key, f"/ws/flow-executions/{flow_id}/") as socket:
                await asyncio.to_thread(post_output, serve, tenant, flow_id, "before")
                cursor = (await next_message(socket))["cursor"]

                await asyncio.to_thread(redis.stop)
                started = time.monotonic()
                during = [await asyncio.to_thread(post_output, serve, tenant, flow_id, f"down-{n}") for n in range(20)]
                slowest = (time.monotonic() - started) / len(during)
                ready = httpx.get(f"{serve.url}/readyz", timeout=10)
                await asyncio.sleep(4)  # longer than NOTIFY_MAX_AGE_SECONDS: the queued messages are given up
                dropped = metric(serve, "superai_flow_notifications_dropped_total")

                await asyncio.to_thread(redis.start)
            # The client reconnects (to either process) and resumes from its last cursor.
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with watch(serve, key, f"/ws/flow-executions/{flow_id}/") as resumed:
                        await resumed.send(json.dumps({"type": "resume", "after": cursor}))
                        seen = set()
                        while (message := await next_message(resumed))["type"] != "resumed":
                            seen.add(message["data"]["id"])
                        after = await asyncio.to_thread(post_output, serve, tenant, flow_id, "after")
                        while (message := await next_message(resumed))["data"]["id"] != after["id"]:
                            pass
                    break
                except (ConnectionClosed, OSError, TimeoutError):
                    assert time.monotonic() < deadline, "no feed after Redis came back"
                    await asyncio.sleep(0.5)
        finally:
            serve.stop()

    assert {row["id"] for row in during} <= seen  # nothing written during the outage is missed
    assert slowest < 1, slowest
    assert ready.status_code == 503 and ready.json()["checks"]["channel_layer"]["ok"] is False
    assert dropped >= len(during)  # what could not be sent is counted, not lost silently
