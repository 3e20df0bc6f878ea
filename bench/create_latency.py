"""Latency of POST /api/v1/task-outputs against a real daphne, with a baseline from the same run.

Sets up a throwaway PostgreSQL database (or uses --database-url), creates an organization and an
API key with the management commands, starts daphne, then times N sequential creates, each followed
by a baseline request (GET /healthz: daphne + Django + one query). Prints p50/p90/p99 and the ratio
of create to baseline medians.

    python bench/create_latency.py                 # PostgreSQL on 127.0.0.1, 200 creates
    python bench/create_latency.py --requests 1000 --database-url postgres://...
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.servers import PROJECT_DIR, free_port


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def psql(database: str, sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-qc", sql], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--database-url", help="default: a throwaway database on PostgreSQL at 127.0.0.1")
    args = parser.parse_args()

    throwaway = None
    database_url = args.database_url
    if database_url is None:
        throwaway = f"superai_flow_bench_{os.getpid()}"
        psql("postgres", f"CREATE DATABASE {throwaway}")
        database_url = f"postgres://postgres@127.0.0.1:5432/{throwaway}"
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    port = free_port()
    server = None
    try:
        print(f"Preparing {database_url} ...", file=sys.stderr)
        manage(env, "migrate", "--noinput")
        organization_id = manage(env, "create_organization", f"bench-{uuid.uuid4().hex[:8]}")
        key = manage(env, "create_api_key", organization_id, "--name", "bench")
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "superai_flow.asgi:application"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
            for _ in range(100):
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            flow = client.post(
                "/api/v1/flow-executions", json={"organization_id": organization_id, "flow_name": "bench"}
            )
            body = {
                "organization_id": organization_id,
                "flow_execution_id": flow.json()["id"],
                "task_name": "extract-text",
                "status": "completed",
                "summary": {"pages": 10, "word_count": 5000},
                "output": {"text": "x" * 2000},
                "tags": ["bench", "pdf"],
            }
            creates, baselines = [], []
            print(f"Timing {args.requests} sequential creates (after {args.warmup} warm-up) ...", file=sys.stderr)
            for i in range(args.warmup + args.requests):
                started = time.perf_counter()
                response = client.post("/api/v1/task-outputs", json=body)
                created = time.perf_counter()
                client.get("/healthz")
                finished = time.perf_counter()
                assert response.status_code == 201, response.text
                if i >= args.warmup:
                    creates.append((created - started) * 1000)
                    baselines.append((finished - created) * 1000)
    finally:
        if server:
            server.terminate()
            server.wait(timeout=10)
        if throwaway:
            psql("postgres", f"DROP DATABASE IF EXISTS {throwaway}")

    result = {
        "requests": args.requests,
        "create_ms": {q: round(percentile(creates, f), 2) for q, f in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))},
        "baseline_ms": {q: round(percentile(baselines, f), 2) for q, f in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))},
        "create_max_ms": round(max(creates), 2),
        "create_to_baseline_median_ratio": round(statistics.median(creates) / statistics.median(baselines), 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
