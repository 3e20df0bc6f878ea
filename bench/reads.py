"""Reads as the table grows: list filters, deep pages, summary ordering, one record, stats, at each size.

Deploys a throwaway PostgreSQL database like production (bench/common.py: the service as a runtime role
under row-level security), starts one daphne process, and for each --sizes N: fills the table up to N task
outputs, half of them another organization's (generated in SQL, as bench/admin_changelist.py does), runs
ANALYZE, then sends each request below --requests times (fewer, at least 30, for a kind too slow to fit
--seconds), one after another, with the first organization's API key, and reports p50, p99 and max of
each. Compare a row across sizes: the issue's target is p99 under 20 ms at a million rows and within 1.5
times the 10,000-row figure.

Two rare tags: `batch-123` is on one output in a thousand spread evenly over the whole history, the worst
case for the tag index (a match on nearly every page of the organization's part of it); `run-3` is on
1,000 consecutive outputs of each fill, as the tag of one workflow run or batch is in practice.

    python bench/reads.py                          # 10,000, 100,000 then 1,000,000 rows
    python bench/reads.py --sizes 10000 100000 --requests 100
    python bench/reads.py --sort-index             # the summary orderings again with `summary_sort_index add`
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import httpx
from admin_changelist import FILL
from common import Deployment, percentile, timed_gets

LIST = "/api/v1/task-outputs"


def requests_under_test(client: httpx.Client, deployment: Deployment, organization_id: str) -> dict[str, str]:
    some_flow = deployment.psql(
        f"SELECT flow_execution_id FROM task_outputs_taskoutput WHERE organization_id = '{organization_id}' "
        "ORDER BY created_at DESC LIMIT 1 OFFSET 500",
        capture=True,
    )
    some_output = deployment.psql(
        f"SELECT id FROM task_outputs_taskoutput WHERE organization_id = '{organization_id}' LIMIT 1 OFFSET 2000",
        capture=True,
    )
    url = f"{LIST}?page_size=500"
    for _ in range(8):  # 4,000 rows deep (less if the organization has fewer rows)
        url = client.get(url).json()["next"] or url
    ordered = f"{LIST}?ordering=-summary.pages"
    for _ in range(19):  # page 20 of the summary ordering (less if there are fewer pages)
        ordered = client.get(ordered).json()["next"] or ordered
    return {
        "list, first page": LIST,
        "status=failed": f"{LIST}?status=failed",
        "task_name=task-07": f"{LIST}?task_name=task-07",
        "flow_execution_id": f"{LIST}?flow_execution_id={some_flow}",
        "tag=batch-123 (1 in 1,000)": f"{LIST}?tag=batch-123",
        "tag=run-3 (1,000 in a row per fill)": f"{LIST}?tag=run-3",
        "tag=even (1 in 2)": f"{LIST}?tag=even",
        "summary.pages=50 (1 in 100)": f"{LIST}?summary.pages=50",
        "summary.pages__gte=90": f"{LIST}?summary.pages__gte=90",
        "a page 4,000 rows deep (500 a page)": url.removeprefix(str(client.base_url).rstrip("/")),
        "ordering=-summary.pages": f"{LIST}?ordering=-summary.pages",
        "ordering=-summary.pages, page 20": ordered.removeprefix(str(client.base_url).rstrip("/")),
        "fields=id,status": f"{LIST}?fields=id,status",
        "one task output": f"{LIST}/{some_output}",
        "stats by task_name, metric summary.pages": f"{LIST}/stats?group_by=task_name&metric=summary.pages",
        "stats by day, metric summary.pages": f"{LIST}/stats?group_by=day&metric=summary.pages",
    }


def timing(client: httpx.Client, path: str, requests: int, seconds: float) -> dict:
    """p50, p99 and max of `requests` GETs of `path` (fewer, at least 30, when they would take over `seconds`)."""
    started = time.perf_counter()
    client.get(path)  # the warm-up, timed to size the run
    first = time.perf_counter() - started
    count = max(30, min(requests, int(seconds / max(first, 1e-3))))
    times = timed_gets(client, path, count, warm_up=False)
    return {
        "p50_ms": round(percentile(times, 0.5), 1),
        "p99_ms": round(percentile(times, 0.99), 1),
        "max_ms": round(max(times), 1),
        "requests": count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--requests", type=int, default=300, help="of each kind, per size (default 300)")
    parser.add_argument(
        "--seconds", type=float, default=20, help="fewer requests of a slow kind, to fit about this long (at least 30)"
    )
    parser.add_argument(
        "--sort-index",
        action="store_true",
        help="at each size, time the summary orderings again with `manage.py summary_sort_index add summary.pages`",
    )
    args = parser.parse_args()

    report: dict[str, dict] = {}
    with Deployment(API_RATE_LIMIT="") as deployment:
        organization_id, key = deployment.tenant()
        other_id, _ = deployment.tenant()
        base = deployment.daphne()
        filled = 0
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
            for size in sorted(args.sizes):
                started = time.monotonic()
                half = (size - filled) // 2
                print(f"Filling up to {size:,} task outputs ...", file=sys.stderr)
                for organization in (organization_id, other_id):
                    fill = FILL % {"org": f"'{organization}'", "rows": half, "flows": max(1, half // 100)}
                    deployment.psql(fill)
                deployment.psql("ANALYZE")
                filled = size
                print(f"... in {time.monotonic() - started:.0f} s", file=sys.stderr)
                requests = requests_under_test(client, deployment, organization_id)
                timed = list(requests.items())
                if args.sort_index:  # made after the rest is timed, removed before the next size is filled
                    timed += [(f"{name} (sort index)", path) for name, path in timed if name.startswith("ordering=")]
                results = {}
                for name, path in timed:
                    if name.endswith("(sort index)") and "sort index" not in results:
                        started = time.monotonic()
                        deployment.manage("summary_sort_index", "add", "summary.pages")
                        results["sort index"] = {"made_in_s": round(time.monotonic() - started, 1)}
                    results[name] = timing(client, path, args.requests, args.seconds)
                    print(f"{size:>9,} {name:50} {results[name]}", file=sys.stderr)
                if "sort index" in results:
                    deployment.manage("summary_sort_index", "remove", "summary.pages")
                report[str(size)] = results
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
