"""Latency from a create's 201 to its receipt on the WebSocket, by number of connected watchers.

Runs against real processes: two daphne servers sharing a throwaway PostgreSQL database and a private
Redis (one serves the watchers' WebSockets, the other the creates, as behind a load balancer). For
each feed (the flow group, the summary group) and each number of watchers, it connects the watchers
from two client processes, then creates task outputs one at a time at a steady pace and records, for
every watcher and every output, receipt time minus the time the 201 arrived (a negative value means
the message beat the response), and receipt time minus the time the request was sent. Ratios compare
the latter with the first (smallest) number of watchers measured in the same run. Clocks are
CLOCK_MONOTONIC, shared by the processes of the machine.

    python bench/live_latency.py                       # 1, 100 and 1,000 watchers, 100 creates each
    python bench/live_latency.py --watchers 1 100 --creates 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.servers import PROJECT_DIR, RedisServer, free_port

CLIENT_PROCESSES = 2


def watcher_process(url: str, key: str, count: int, ready, stop, results) -> None:
    """Open `count` WebSockets to `url`; record when each output id arrives on each; report at `stop`."""
    from websockets.asyncio.client import connect

    async def main() -> None:
        arrivals: list[tuple[str, float]] = []
        handshakes = asyncio.Semaphore(50)

        async def one() -> None:
            async with handshakes:
                socket = await connect(url, additional_headers={"Authorization": f"Bearer {key}"}, open_timeout=60)
            ready.put(1)
            async with socket:
                async for text in socket:
                    arrived = time.monotonic()
                    message = json.loads(text)
                    if message["type"].startswith("task_output."):
                        arrivals.append((message["data"]["id"], arrived))

        tasks = [asyncio.create_task(one()) for _ in range(count)]
        while not stop.is_set():
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        results.put(arrivals)

    asyncio.run(main())


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def manage(env: dict[str, str], *args: str) -> str:
    run = subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    run.check_returncode()
    return run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""


def daphne(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "superai_flow.asgi:application"],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(base + "/healthz", timeout=1)
            return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("daphne did not start")


def measure(ws_base, http: httpx.Client, path: str, key: str, body: dict, watchers: int, creates: int, pace: float):
    context = multiprocessing.get_context("spawn")
    ready, results, stop = context.Queue(), context.Queue(), context.Event()
    url = ws_base.replace("http", "ws", 1) + path
    shares = [watchers // CLIENT_PROCESSES + (1 if n < watchers % CLIENT_PROCESSES else 0) for n in range(2)]
    arguments = [(url, key, share, ready, stop, results) for share in shares if share]
    processes = [context.Process(target=watcher_process, args=args) for args in arguments]
    for process in processes:
        process.start()
    for _ in range(watchers):
        ready.get(timeout=120)
    time.sleep(1)  # let the last subscriptions settle
    sent: dict[str, float] = {}
    responded: dict[str, float] = {}
    for _ in range(creates):
        started = time.monotonic()
        response = http.post("/api/v1/task-outputs", json=body)
        responded[response.json()["id"]] = time.monotonic()
        sent[response.json()["id"]] = started
        assert response.status_code == 201, response.text
        time.sleep(pace)
    time.sleep(2)
    stop.set()
    arrivals = [item for _ in processes for item in results.get(timeout=120)]
    for process in processes:
        process.join(timeout=30)
    arrivals = [(output_id, arrived) for output_id, arrived in arrivals if output_id in responded]
    after_201 = [(arrived - responded[output_id]) * 1000 for output_id, arrived in arrivals]
    after_request = [(arrived - sent[output_id]) * 1000 for output_id, arrived in arrivals]
    return {
        "watchers": watchers,
        "pace_ms": round(pace * 1000),
        "deliveries": f"{len(arrivals)}/{watchers * creates}",
        "create_p50_ms": round(statistics.median(responded[i] - sent[i] for i in sent) * 1000, 1),
        "after_201_p50_ms": round(statistics.median(after_201), 1),
        "after_201_p99_ms": round(percentile(after_201, 0.99), 1),
        "after_201_max_ms": round(max(after_201), 1),
        "after_request_p50_ms": round(statistics.median(after_request), 1),
        "after_request_p99_ms": round(percentile(after_request, 0.99), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watchers", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--creates", type=int, default=100)
    parser.add_argument(
        "--pace-ms",
        type=float,
        help="pause between creates (default: 50 ms, or 0.25 ms per watcher when more), so that each fan-out "
        "finishes before the next: this measures latency, not throughput",
    )
    args = parser.parse_args()

    database = f"superai_flow_bench_{os.getpid()}"
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {database}"], check=True)
    servers: list[subprocess.Popen] = []
    try:
        with RedisServer() as redis:
            env = {
                **os.environ,
                "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
                "REDIS_URL": redis.url,
                "LOG_LEVEL": "WARNING",
            }
            manage(env, "migrate", "--noinput")
            organization_id = manage(env, "create_organization", f"bench-{uuid.uuid4().hex[:8]}")
            key = manage(env, "create_api_key", organization_id, "--name", "bench")
            (ws_server, ws_base), (http_server, http_base) = daphne(env), daphne(env)
            servers += [ws_server, http_server]
            with httpx.Client(base_url=http_base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
                flow = http.post("/api/v1/flow-executions", json={"organization_id": organization_id, "flow_name": "b"})
                body = {
                    "organization_id": organization_id,
                    "flow_execution_id": flow.json()["id"],
                    "task_name": "extract-text",
                    "status": "completed",
                    "summary": {"pages": 10, "word_count": 5000},
                    "output": {"text": "x" * 500},
                    "tags": ["bench"],
                }
                feeds = {"flow": f"/ws/flow-executions/{flow.json()['id']}/", "summary": "/ws/task-outputs/summaries/"}
                report = {}
                for feed, path in feeds.items():
                    report[feed] = []
                    for watchers in args.watchers:
                        print(f"{feed} feed, {watchers} watcher(s) ...", file=sys.stderr)
                        pace = args.pace_ms / 1000 if args.pace_ms is not None else max(0.05, watchers * 0.00025)
                        report[feed].append(measure(ws_base, http, path, key, body, watchers, args.creates, pace))
                for rows in report.values():
                    baseline = rows[0]["after_request_p50_ms"]
                    for row in rows:
                        row["after_request_p50_vs_first_row"] = round(row["after_request_p50_ms"] / baseline, 2)
            print(json.dumps(report, indent=2))
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {database}"])


if __name__ == "__main__":
    main()
