"""Latency of POST /api/v1/task-outputs against a real daphne, with a baseline from the same run.

Deploys a throwaway PostgreSQL database like production (bench/common.py: runtime role, row-level
security), creates an organization and an API key with the management commands, starts daphne, then
times N sequential creates, each followed by a baseline request (GET /healthz: daphne + Django, no
query; it made one `SELECT 1` before /readyz took the checks over). Prints p50/p90/p99 and the ratio
of create to baseline medians.

    python bench/create_latency.py                 # 200 creates
    python bench/create_latency.py --requests 1000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import httpx
from common import Deployment, percentile, task_output_body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    with Deployment() as deployment:
        organization_id, key = deployment.tenant()
        base = deployment.daphne()
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
            flow = client.post(
                "/api/v1/flow-executions", json={"organization_id": organization_id, "flow_name": "bench"}
            )
            body = task_output_body(organization_id, flow.json()["id"], text_bytes=2000, tags=["bench", "pdf"])
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
