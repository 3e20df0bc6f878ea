"""/metrics under `make serve`: one set of figures for the whole service, whichever process answers."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.servers import MakeServe
from tests.e2e.test_live import new_flow, post_output
from tests.e2e.test_serve import connections_per_process, watchers_on_every_process

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

CREATED = "superai_flow_task_outputs_created_total"


def scrape(server: MakeServe) -> dict[tuple, float]:
    """One scrape on a new connection (so either process may answer): {(name, sorted labels): value}."""
    response = httpx.get(server.url + "/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def created_by(metrics_dir: Path, pid: int) -> float:
    """What one process has counted itself, from its own file in the shared directory."""
    path = metrics_dir / f"counter_{pid}.db"
    if not path.exists():
        return 0
    for metric in MultiProcessCollector.merge([str(path)]):
        for sample in metric.samples:
            if sample.name == CREATED:
                return sample.value
    return 0


def eventually(condition, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)
    return result


def test_every_scrape_shows_the_creates_of_every_process(serve, tenant, tmp_path):
    metrics_dir = tmp_path / "run" / "metrics"
    assert value(scrape(serve), CREATED) == 0
    flow_id = new_flow(serve, tenant)
    daphnes = serve.daphnes()

    created = 0
    # A new connection per request: the kernel hands each to whichever process accepts first.
    while created < 30 or (not all(created_by(metrics_dir, pid) for pid in daphnes) and created < 300):
        post_output(serve, tenant, flow_id, f"task-{created}")
        created += 1
    per_process = {pid: created_by(metrics_dir, pid) for pid in daphnes}
    assert all(per_process.values()) and sum(per_process.values()) == created, per_process

    scrapes = [scrape(serve) for _ in range(12)]
    route = {"route": "/api/v1/task-outputs", "method": "POST"}
    assert [value(samples, CREATED) for samples in scrapes] == [created] * 12
    assert {value(samples, "superai_flow_http_requests_total", status="201", **route) for samples in scrapes} == {
        created
    }
    assert {value(samples, "superai_flow_http_request_duration_seconds_count", **route) for samples in scrapes} == {
        created
    }
    assert {value(samples, "superai_flow_server_processes") for samples in scrapes} == {2}


@pytest.mark.asyncio
async def test_a_dead_process_keeps_its_counts_and_its_clients_leave_the_gauge(serve, tenant):
    flow_id = new_flow(serve, tenant)
    for n in range(10):
        await asyncio.to_thread(post_output, serve, tenant, flow_id, f"task-{n}")
    # Some on each process: the kernel may hand a run of connections to one of them.
    sockets = await watchers_on_every_process(serve, tenant[1], f"/ws/flow-executions/{flow_id}/", 16)
    try:
        clients = {"transport": "websocket"}
        await asyncio.to_thread(
            eventually, lambda: value(scrape(serve), "superai_flow_live_clients", **clients) == len(sockets)
        )
        per_process = connections_per_process(serve.daphnes(), serve.port)
        assert len(per_process) == 2 and all(per_process.values()), per_process
        victim, survivor = sorted(per_process)

        os.kill(victim, signal.SIGKILL)
        await asyncio.to_thread(eventually, lambda: len(serve.daphnes()) == 2 and victim not in serve.daphnes())

        def settled():
            samples = scrape(serve)
            return samples if value(samples, "superai_flow_server_processes") == 2 else None

        samples = await asyncio.to_thread(eventually, settled)
        assert value(samples, CREATED) == 10  # the dead process's creates stay counted
        assert value(samples, "superai_flow_live_clients", **clients) == per_process[survivor]
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
