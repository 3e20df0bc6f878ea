"""Live updates end to end: real daphne processes, real WebSocket and HTTP clients."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import threading
import time

import httpx
import pytest
from channels.db import database_sync_to_async
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from superai_flow.organizations.models import APIKey
from superai_flow.organizations.services import api_key_revoke
from task_outputs.services import task_output_create
from tests.e2e.servers import DaphneServer, RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_flow(server: DaphneServer, tenant) -> str:
    organization_id, key = tenant
    body = {"organization_id": organization_id, "flow_name": "live"}
    response = httpx.post(f"{server.url}/api/v1/flow-executions", json=body, headers=headers(key), timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def post_output(server: DaphneServer, tenant, flow_id: str, task_name: str, client=httpx) -> dict:
    organization_id, key = tenant
    body = {"organization_id": organization_id, "flow_execution_id": flow_id, "task_name": task_name, "summary": {}}
    response = client.post(f"{server.url}/api/v1/task-outputs", json=body, headers=headers(key), timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def start_writers(server: DaphneServer, tenant, flow_id: str, enough: threading.Event, count: int = 8):
    """`count` threads that post task outputs to the flow execution: each at least 25, and on until `enough` is
    set (however fast creates are). The ids created, as they come, and the threads."""
    created: list[str] = []

    def writer(n: int) -> None:
        with httpx.Client() as client:
            for i in range(500):
                if i >= 25 and enough.is_set():
                    return
                created.append(post_output(server, tenant, flow_id, f"w{n}-{i}", client=client)["id"])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    return created, threads


def watch(server: DaphneServer, key: str, path: str):
    return connect(server.url.replace("http", "ws", 1) + path, additional_headers=headers(key), open_timeout=10)


async def next_message(socket, timeout: float = 10) -> dict:
    while (message := json.loads(await asyncio.wait_for(socket.recv(), timeout)))["type"] == "heartbeat":
        pass
    return message


async def test_a_watcher_receives_an_output_posted_over_http(daphne_server, tenant):
    flow_id = new_flow(daphne_server, tenant)
    async with (
        watch(daphne_server, tenant[1], f"/ws/flow-executions/{flow_id}/") as flow_socket,
        watch(daphne_server, tenant[1], "/ws/task-outputs/summaries/") as summary_socket,
    ):
        created = await asyncio.to_thread(post_output, daphne_server, tenant, flow_id, "extract")

        flow_message = await next_message(flow_socket)
        summary_message = await next_message(summary_socket)

    assert flow_message["type"] == "task_output.created" and flow_message["data"] == created
    assert summary_message["type"] == "task_output.summary" and summary_message["data"]["id"] == created["id"]


@pytest.mark.redis
async def test_a_watcher_on_one_server_receives_an_output_posted_to_another(tenant):
    with DaphneServer() as server_a, DaphneServer() as server_b:
        flow_id = new_flow(server_b, tenant)
        async with watch(server_a, tenant[1], f"/ws/flow-executions/{flow_id}/") as socket:
            created = await asyncio.to_thread(post_output, server_b, tenant, flow_id, "extract")

            message = await next_message(socket)

    assert message["data"]["id"] == created["id"]


@pytest.mark.redis
async def test_writes_succeed_while_redis_is_down_and_delivery_resumes_after(tenant):
    with RedisServer() as redis, DaphneServer(REDIS_URL=redis.url) as server:
        flow_id = new_flow(server, tenant)
        async with watch(server, tenant[1], f"/ws/flow-executions/{flow_id}/") as socket:
            await asyncio.to_thread(redis.stop)
            during = [await asyncio.to_thread(post_output, server, tenant, flow_id, f"down-{n}") for n in range(3)]
            listed = httpx.get(
                f"{server.url}/api/v1/task-outputs", params={"flow_execution_id": flow_id}, headers=headers(tenant[1])
            ).json()["results"]
            assert {row["id"] for row in listed} == {row["id"] for row in during}

            await asyncio.to_thread(redis.start)
            # The server resubscribes by itself; keep posting until a new output arrives.
            for attempt in range(30):
                probe = await asyncio.to_thread(post_output, server, tenant, flow_id, f"after-{attempt}")
                try:
                    while (await next_message(socket, timeout=1))["data"]["id"] != probe["id"]:
                        pass
                    break
                except TimeoutError:
                    continue
            else:
                pytest.fail("no output was delivered after Redis came back")


async def test_a_client_that_keeps_reconnecting_misses_nothing_under_concurrent_writers(daphne_server, tenant):
    flow_id = new_flow(daphne_server, tenant)
    path = f"/ws/flow-executions/{flow_id}/"
    listing = httpx.get(
        f"{daphne_server.url}/api/v1/task-outputs", params={"flow_execution_id": flow_id}, headers=headers(tenant[1])
    )
    cursor = listing.headers["X-Live-Cursor"]
    reconnected_enough = threading.Event()
    created, threads = start_writers(daphne_server, tenant, flow_id, reconnected_enough)
    received: set[str] = set()
    reconnects = 0

    async def session(deadline: float | None) -> None:
        """One connection: resume from the cursor, then read until `deadline` (or until replay ends)."""
        nonlocal cursor
        latest, resumed = None, False  # a connection's cursors count once it has resumed (docs/live-updates.md)
        async with watch(daphne_server, tenant[1], path) as socket:
            await socket.send(json.dumps({"type": "resume", "after": cursor}))
            loop = asyncio.get_running_loop()
            while deadline is None or loop.time() < deadline:
                try:
                    message = await next_message(socket, timeout=0.2)
                except TimeoutError:
                    continue
                if message["type"] == "resumed":
                    resumed, cursor = True, latest or cursor
                    if deadline is None:
                        return
                if message["type"].startswith("task_output."):
                    received.add(message["data"]["id"])
                    latest = message["cursor"]
                    if resumed:
                        cursor = latest

    while any(thread.is_alive() for thread in threads):
        await session(asyncio.get_running_loop().time() + random.uniform(0.2, 0.8))
        reconnects += 1
        if reconnects >= 3:
            reconnected_enough.set()
    await session(None)  # a last resume after the writers finished

    assert len(created) >= 200
    assert reconnects >= 3, "the writers finished before the reader reconnected: the test did not test anything"
    assert set(created) <= received, f"missed {len(set(created) - received)} outputs"


@pytest.mark.redis
async def test_notifications_still_queued_at_shutdown_are_sent(tenant):
    with (
        RedisServer() as redis,
        DaphneServer(REDIS_URL=redis.url) as leaving,
        DaphneServer(REDIS_URL=redis.url) as staying,
    ):
        flow_id = new_flow(leaving, tenant)
        async with watch(staying, tenant[1], f"/ws/flow-executions/{flow_id}/") as socket:
            # Writes to Redis (PUBLISH included) wait 3 s: the notifications stay queued in `leaving`.
            pause = ["redis-cli", "-p", str(redis.port), "CLIENT", "PAUSE", "3000", "WRITE"]
            subprocess.run(pause, check=True, capture_output=True)
            created = [await asyncio.to_thread(post_output, leaving, tenant, flow_id, f"t{n}") for n in range(3)]
            leaving.process.send_signal(signal.SIGTERM)

            received = set()
            while received != {row["id"] for row in created}:
                received.add((await next_message(socket, timeout=15))["data"]["id"])

        assert leaving.process.wait(timeout=20) == 0
        assert "Sending" in leaving.output() and "queued notifications before exit" in leaving.output()


async def test_a_key_revoked_while_its_socket_is_open_closes_it_within_5_seconds(daphne_server, tenant):
    flow_id = new_flow(daphne_server, tenant)
    async with watch(daphne_server, tenant[1], f"/ws/flow-executions/{flow_id}/") as socket:
        await database_sync_to_async(
            lambda: api_key_revoke(api_key=APIKey.objects.get(organization_id=tenant[0]))
        )()  # by this process: the server learns it from the database alone
        revoked = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(socket.recv(), 6)

    assert closed.value.rcvd.code == 4401
    assert time.monotonic() - revoked < 5


async def test_clients_that_leave_mid_replay_end_their_consumers_cleanly(daphne_server, tenant):
    flow_id = new_flow(daphne_server, tenant)
    path = f"/ws/flow-executions/{flow_id}/"
    cursor = httpx.get(
        f"{daphne_server.url}/api/v1/task-outputs", params={"flow_execution_id": flow_id}, headers=headers(tenant[1])
    ).headers["X-Live-Cursor"]

    def write_many() -> set[str]:
        fields = {"organization_id": tenant[0], "flow_execution_id": flow_id, "summary": {}, "output": "x" * 500}
        return {str(task_output_create(task_name=f"t{n}", **fields)[0].id) for n in range(2000)}

    written = await database_sync_to_async(write_many)()
    log_before = len(daphne_server.output())

    # Each leaves after the first message of its replay, while the server is still sending the rest.
    for _ in range(8):
        async with watch(daphne_server, tenant[1], path) as socket:
            await socket.send(json.dumps({"type": "resume", "after": cursor}))
            assert (await next_message(socket))["type"] == "task_output.created"
    async with watch(daphne_server, tenant[1], path) as socket:
        await socket.send(json.dumps({"type": "resume", "after": cursor}))
        replayed = set()
        while (message := await next_message(socket))["type"] != "resumed":
            replayed.add(message["data"]["id"])

    assert replayed == written
    await asyncio.sleep(0.5)
    log = daphne_server.output()[log_before:]
    assert "Exception inside application" not in log and "closed protocol" not in log, log[-3000:]
