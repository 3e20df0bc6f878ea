"""`make serve`: several daphne processes on one address under supervisord, as users run it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.servers import PROJECT_DIR, free_port, shared_database_url
from tests.e2e.test_live import headers, new_flow, next_message, post_output, watch

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def connections_per_process(pids: list[int], port: int) -> dict[int, int]:
    """How many established TCP connections to `port` each process holds (from /proc, no tools needed)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                inodes.add(fields[9])
    counts = {}
    for pid in pids:
        fds = Path(f"/proc/{pid}/fd")
        counts[pid] = sum(1 for fd in fds.iterdir() if os.readlink(fd).removeprefix("socket:[").rstrip("]") in inodes)
    return counts


async def watchers_on_every_process(serve, key: str, path: str, count: int) -> list:
    """At least `count` watchers of `path`, with some on every daphne process.

    `serve` answers once one process does; another may still be starting, and the kernel hands each
    connection on the shared socket to whichever listening process accepts it first (an idle one may win
    a whole run of them). So connect in concurrent batches, which keep both busy, until every process
    holds watchers, for up to 30 s.
    """
    sockets = []
    deadline = time.monotonic() + 30
    while True:
        sockets += await asyncio.gather(*(watch(serve, key, path) for _ in range(max(count // 2, 2))))
        spread = all(connections_per_process(serve.daphnes(), serve.port).values())
        if (len(sockets) >= count and spread) or time.monotonic() > deadline:
            return sockets
        await asyncio.sleep(0.2)


@pytest.mark.asyncio
@pytest.mark.redis
async def test_every_process_serves_and_live_messages_reach_watchers_on_each(serve, tenant):
    flow_id = new_flow(serve, tenant)
    sockets = await watchers_on_every_process(serve, tenant[1], f"/ws/flow-executions/{flow_id}/", 24)
    try:
        per_process = connections_per_process(serve.daphnes(), serve.port)
        assert len(per_process) == 2 and all(per_process.values()), per_process  # both processes hold watchers

        created = await asyncio.to_thread(post_output, serve, tenant, flow_id, "extract")

        messages = await asyncio.gather(*(next_message(socket) for socket in sockets))
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets))
    assert {message["data"]["id"] for message in messages} == {created["id"]}


@pytest.mark.redis
def test_a_killed_process_is_restarted_and_the_address_keeps_answering(serve, tenant):
    victim, survivor = serve.daphnes()
    os.kill(victim, signal.SIGKILL)

    with httpx.Client(base_url=serve.url, headers=headers(tenant[1]), timeout=10) as client:
        answers = [client.get("/api/v1/flow-executions").status_code for _ in range(20)]
    deadline = time.monotonic() + 30
    while not (len(serve.daphnes()) == 2 and victim not in serve.daphnes()) and time.monotonic() < deadline:
        time.sleep(0.2)

    assert answers == [200] * 20
    assert survivor in serve.daphnes() and len(serve.daphnes()) == 2, serve.output()


@pytest.mark.redis
def test_sigterm_stops_every_process_cleanly(serve):
    daphnes = serve.daphnes()
    os.kill(serve.supervisord(), signal.SIGTERM)

    assert serve.make.wait(timeout=40) == 0, serve.output()
    assert not [pid for pid in daphnes if Path(f"/proc/{pid}").exists()]
    with pytest.raises(httpx.TransportError):
        httpx.get(serve.url + "/healthz", timeout=2)


def test_serve_refuses_several_processes_without_redis(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(DATABASE_URL=shared_database_url(), SUPERAI_FLOW_VAR_DIR=str(tmp_path))

    run = subprocess.run(["make", "-s", "serve", f"PORT={free_port()}", "WEB_CONCURRENCY=2"], cwd=PROJECT_DIR,
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip

    assert run.returncode != 0
    assert "WEB_CONCURRENCY=2 needs REDIS_URL" in run.stderr


@pytest.mark.asyncio
@pytest.mark.redis
async def test_watchers_of_a_killed_process_resume_elsewhere_without_a_gap(serve, tenant):
    flow_id = new_flow(serve, tenant)
    path = f"/ws/flow-executions/{flow_id}/"
    sockets = await watchers_on_every_process(serve, tenant[1], path, 12)
    assert all(connections_per_process(serve.daphnes(), serve.port).values())
    seen: list[set[str]] = [set() for _ in sockets]
    cursors: list[str | None] = [None] * len(sockets)
    before = [await asyncio.to_thread(post_output, serve, tenant, flow_id, f"before-{n}") for n in range(3)]
    for i, socket in enumerate(sockets):
        for _ in before:
            message = await next_message(socket)
            seen[i].add(message["data"]["id"])
            cursors[i] = message["cursor"]

    os.kill(serve.daphnes()[0], signal.SIGKILL)
    after = [await asyncio.to_thread(post_output, serve, tenant, flow_id, f"after-{n}") for n in range(3)]
    wanted = {output["id"] for output in before + after}
    resumed = 0
    for i, socket in enumerate(sockets):
        try:
            while seen[i] != wanted:
                seen[i].add((await next_message(socket))["data"]["id"])
        except ConnectionClosed:  # it was on the killed process: reconnect and resume from its cursor
            resumed += 1
            async with watch(serve, tenant[1], path) as again:
                await again.send(json.dumps({"type": "resume", "after": cursors[i]}))
                while (message := await next_message(again))["type"] != "resumed":
                    seen[i].add(message["data"]["id"])
        finally:
            await socket.close()

    assert resumed > 0  # some watchers were on the killed process
    assert all(ids == wanted for ids in seen)
