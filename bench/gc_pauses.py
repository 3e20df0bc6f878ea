"""Stop-the-world pauses under a steady read load: the garbage collector settled (GC_FREEZE=1) or not.

Deploys a throwaway PostgreSQL database like production (bench/common.py), fills one flow execution
with task outputs, and starts two daphne processes on it: one as shipped, one with GC_FREEZE=0 (the
interpreter's default collector). Then a paced load reads a page of 50 task outputs from each in turn
(the two interleaved, so both see the same machine), and prints each one's latency percentiles and
maximum: a full collection shows as a maximum far above p99.

    python bench/gc_pauses.py                   # 60 s at 100 requests/s to each
    python bench/gc_pauses.py --seconds 120 --rate 150
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import httpx
from common import Deployment, percentile, task_output_body


def summary(samples: list[float]) -> dict[str, float]:
    p50 = percentile(samples, 0.5)
    return {
        "requests": len(samples),
        "p50_ms": round(p50, 2),
        "p99_ms": round(percentile(samples, 0.99), 2),
        "p999_ms": round(percentile(samples, 0.999), 2),
        "max_ms": round(max(samples), 2),
        "over_5x_p50": sum(1 for sample in samples if sample > 5 * p50),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=100, help="requests per second to each server")
    parser.add_argument("--outputs", type=int, default=200, help="task outputs to read from")
    args = parser.parse_args()

    with Deployment(API_RATE_LIMIT="") as deployment:
        organization_id, key = deployment.tenant()
        servers = {
            "settled (GC_FREEZE=1)": deployment.daphne(),
            "default (GC_FREEZE=0)": deployment.daphne(GC_FREEZE="0"),
        }
        headers = {"Authorization": f"Bearer {key}"}
        clients = {name: httpx.Client(base_url=base, headers=headers, timeout=10) for name, base in servers.items()}
        first = next(iter(clients.values()))
        flow = first.post("/api/v1/flow-executions", json={"organization_id": organization_id, "flow_name": "gc"})
        body = task_output_body(organization_id, flow.json()["id"], text_bytes=500, tags=["bench"])
        print(f"Creating {args.outputs} task outputs ...", file=sys.stderr)
        for _ in range(args.outputs):
            first.post("/api/v1/task-outputs", json=body).raise_for_status()
        path = "/api/v1/task-outputs?page_size=50"
        for client in clients.values():  # warm up
            for _ in range(50):
                client.get(path).raise_for_status()
        print(f"Reading for {args.seconds:.0f} s at {args.rate:.0f} requests/s to each server ...", file=sys.stderr)
        samples: dict[str, list[float]] = {name: [] for name in clients}
        interval = 1 / args.rate
        deadline = time.monotonic() + args.seconds
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            for name, client in clients.items():
                started = time.perf_counter()
                client.get(path).raise_for_status()
                samples[name].append((time.perf_counter() - started) * 1000)
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        for client in clients.values():
            client.close()

    print(json.dumps({name: summary(values) for name, values in samples.items()}, indent=2))


if __name__ == "__main__":
    main()
