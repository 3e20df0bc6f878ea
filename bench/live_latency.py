"""Latency from a create's 201 to its receipt on the WebSocket or the event stream, by number of watchers.

Runs against real processes: two daphne servers sharing a throwaway PostgreSQL database (deployed like
production, bench/common.py) and a private Redis; one serves the watchers' WebSockets, the other the
creates, as behind a load balancer. For each feed (the flow group, the summary group) and each number
of watchers, it connects the watchers from two client processes, then creates task outputs one at a
time at a steady pace and records, for every watcher and every output, receipt time minus the time
the 201 arrived (a negative value means the message beat the response), and receipt time minus the
time the request was sent. Ratios compare the latter with the first (smallest) number of watchers
measured in the same run. Each feed is measured over WebSockets and over Server-Sent Events
(`GET /api/v1/task-outputs/stream`, read as curl or EventSource would), one after the other in the same
run, against the same servers. After the last create each watcher waits up to DRAIN_SECONDS for what it is
still owed; "deliveries" counts what arrived, and "closed_early" says how any socket that closed before
its last message ended. Clocks are CLOCK_MONOTONIC, shared by the processes of the machine.

    python bench/live_latency.py                       # 1, 100 and 1,000 watchers, 100 creates each
    python bench/live_latency.py --watchers 1 100 --creates 50
    python bench/live_latency.py --transports sse --watchers 1 100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import statistics
import sys
import time

import httpx
from common import Deployment, percentile, task_output_body

from tests.e2e.servers import RedisServer

CLIENT_PROCESSES = 2
DRAIN_SECONDS = 30  # how long after the last create a watcher may still be owed a message


def watcher_process(url: str, key: str, count: int, expected: int, ready, stop, results) -> None:
    """Open `count` WebSockets (a ws:// `url`) or event streams (an http:// one) and record when each output id
    arrives on each. Once `stop` is set, wait (up to DRAIN_SECONDS) until every watcher has its `expected`
    messages or has closed; then report the arrivals and how each watcher that closed early ended."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    headers = {"Authorization": f"Bearer {key}"}

    async def main() -> None:
        arrivals: list[tuple[str, float]] = []
        closed: list[str] = []
        handshakes = asyncio.Semaphore(50)
        done = [asyncio.Event() for _ in range(count)]

        async def websocket(finished: asyncio.Event) -> None:
            async with handshakes:
                socket = await connect(url, additional_headers=headers, open_timeout=60)
            ready.put(1)
            received = 0
            try:
                async with socket:
                    async for text in socket:
                        arrived = time.monotonic()
                        message = json.loads(text)
                        if message["type"].startswith("task_output."):
                            arrivals.append((message["data"]["id"], arrived))
                            received += 1
                            if received == expected:
                                finished.set()
            except ConnectionClosed:
                pass
            if received < expected:
                closed.append(f"after {received} messages: code {socket.close_code} {socket.close_reason!r}")
            finished.set()

        async def event_stream(client: httpx.AsyncClient, finished: asyncio.Event) -> None:
            received, event = 0, None
            try:
                async with handshakes:
                    response = await client.send(client.build_request("GET", url, headers=headers), stream=True)
                ready.put(1)
                async with contextlib.aclosing(response.aiter_lines()) as lines:
                    async for line in lines:
                        if line.startswith("event: "):
                            event = line[7:]
                        elif line.startswith("data: ") and event.startswith("task_output."):
                            arrivals.append((json.loads(line[6:])["id"], time.monotonic()))
                            received += 1
                            if received == expected:
                                finished.set()
            except httpx.HTTPError as error:
                closed.append(f"after {received} messages: {error!r}")
            finished.set()

        async with httpx.AsyncClient(timeout=httpx.Timeout(60, read=None), limits=httpx.Limits()) as client:
            if url.startswith("ws"):
                tasks = [asyncio.create_task(websocket(finished)) for finished in done]
            else:
                tasks = [asyncio.create_task(event_stream(client, finished)) for finished in done]
            while not stop.is_set():
                await asyncio.sleep(0.05)
            await asyncio.wait([asyncio.create_task(event.wait()) for event in done], timeout=DRAIN_SECONDS)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        results.put((arrivals, closed))

    asyncio.run(main())


def measure(url: str, http: httpx.Client, key: str, body: dict, watchers: int, creates: int, pace: float):
    context = multiprocessing.get_context("spawn")
    ready, results, stop = context.Queue(), context.Queue(), context.Event()
    shares = [watchers // CLIENT_PROCESSES + (1 if n < watchers % CLIENT_PROCESSES else 0) for n in range(2)]
    arguments = [(url, key, share, creates, ready, stop, results) for share in shares if share]
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
    stop.set()
    arrivals, closed = [], []
    for _ in processes:
        theirs, their_closed = results.get(timeout=DRAIN_SECONDS + 120)
        arrivals += theirs
        closed += their_closed
    for process in processes:
        process.join(timeout=30)
    arrivals = [(output_id, arrived) for output_id, arrived in arrivals if output_id in responded]
    after_201 = [(arrived - responded[output_id]) * 1000 for output_id, arrived in arrivals]
    after_request = [(arrived - sent[output_id]) * 1000 for output_id, arrived in arrivals]
    return {
        "watchers": watchers,
        "pace_ms": round(pace * 1000),
        "deliveries": f"{len(arrivals)}/{watchers * creates}",
        "closed_early": closed,
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
    parser.add_argument("--transports", nargs="+", choices=["websocket", "sse"], default=["websocket", "sse"])
    parser.add_argument(
        "--pace-ms",
        type=float,
        help="pause between creates (default: 50 ms, or 0.25 ms per watcher when more), so that each fan-out "
        "finishes before the next: this measures latency, not throughput",
    )
    args = parser.parse_args()

    with RedisServer() as redis, Deployment(REDIS_URL=redis.url) as deployment:
        organization_id, key = deployment.tenant()
        ws_base, http_base = deployment.daphne(), deployment.daphne()
        with httpx.Client(base_url=http_base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            flow = http.post("/api/v1/flow-executions", json={"organization_id": organization_id, "flow_name": "b"})
            body = task_output_body(organization_id, flow.json()["id"], text_bytes=500, tags=["bench"])
            flow_id = flow.json()["id"]
            urls = {
                ("flow", "websocket"): f"{ws_base.replace('http', 'ws', 1)}/ws/flow-executions/{flow_id}/",
                ("flow", "sse"): f"{ws_base}/api/v1/task-outputs/stream?flow_execution_id={flow_id}",
                ("summary", "websocket"): f"{ws_base.replace('http', 'ws', 1)}/ws/task-outputs/summaries/",
                ("summary", "sse"): f"{ws_base}/api/v1/task-outputs/stream",
            }
            report = {}
            for (feed, transport), url in urls.items():
                if transport not in args.transports:
                    continue
                rows = report[f"{feed} ({transport})"] = []
                for watchers in args.watchers:
                    print(f"{feed} feed over {transport}, {watchers} watcher(s) ...", file=sys.stderr)
                    pace = args.pace_ms / 1000 if args.pace_ms is not None else max(0.05, watchers * 0.00025)
                    rows.append(measure(url, http, key, body, watchers, args.creates, pace))
            for rows in report.values():
                baseline = rows[0]["after_request_p50_ms"]
                for row in rows:
                    row["after_request_p50_vs_first_row"] = round(row["after_request_p50_ms"] / baseline, 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
