"""Export and stats at a million rows: the export's time to the first byte and to the last, the server's memory
meanwhile, and grouped stats queries.

Deploys a throwaway PostgreSQL database like production (bench/common.py: the service as a runtime role
under row-level security), fills it with --rows task outputs of one organization (generated in SQL, as
bench/admin_changelist.py does: about a minute for a million), starts one daphne process, and downloads
GET /api/v1/task-outputs/export with the organization's API key, once per format (ndjson, csv), reading
the stream as it arrives. For each: the time to the first byte and to the last, bytes and lines, and the
daphne process's resident memory (VmRSS, sampled every 20 ms from /proc) before the export and at its
peak. Then GET /api/v1/task-outputs/stats, grouped and with a metric, --repeat times each (median, max).
Baseline of the same run: the first page of the list (50 records).

    python bench/export.py                  # 1,000,000 rows
    python bench/export.py --rows 100000
    python bench/export.py --stats-only     # the stats queries only
    python bench/export.py --shared-buffers 1GB   # on a private PostgreSQL holding the table in its cache

The shared server keeps PostgreSQL's default `shared_buffers` (128 MB), smaller than a million outputs
(about 270 MB): every full scan then reads most pages from the OS's cache. `--shared-buffers` deploys on
a private instance instead (tests/e2e/servers.py `PrivatePostgres`, not pinned), configured as a
production server would be, with the cache larger than the table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time

import httpx
from admin_changelist import FILL
from common import SERVER, Deployment, PrivatePostgres, timed_gets

STATS_QUERIES = (
    {"metric": "summary.pages"},
    {"group_by": "task_name", "metric": "summary.pages"},
    {"group_by": "day", "metric": "summary.pages"},
    {"group_by": "status,day", "metric": "summary.word_count"},
    {"group_by": "hour"},
)
SAMPLE_SECONDS = 0.02  # how often the server's memory is read


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def download(client: httpx.Client, pid: int, params: dict[str, str]) -> dict:
    before = rss_kib(pid)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(SAMPLE_SECONDS):
            peak = max(peak, rss_kib(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    first_byte = None
    size = lines = 0
    with client.stream("GET", "/api/v1/task-outputs/export", params=params) as response:
        assert response.status_code == 200, response.read()[:500]
        for chunk in response.iter_bytes():
            if first_byte is None:
                first_byte = time.perf_counter() - started
            size += len(chunk)
            lines += chunk.count(b"\n")
    total = time.perf_counter() - started
    done.set()
    sampler.join()
    return {
        "params": params,
        "first_byte_ms": round(first_byte * 1000, 1),
        "total_s": round(total, 2),
        "bytes": size,
        "lines": lines,
        "mib_per_s": round(size / 2**20 / total, 1),
        "rss_before_mib": round(before / 1024, 1),
        "rss_peak_mib": round(peak / 1024, 1),
        "rss_growth_mib": round((peak - before) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="times each stats query runs (default 5)")
    parser.add_argument("--stats-only", action="store_true", help="skip the downloads")
    parser.add_argument("--shared-buffers", metavar="SIZE", help="on a private PostgreSQL with this shared_buffers")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        server = SERVER
        if args.shared_buffers:
            settings = {"shared_buffers": args.shared_buffers}
            server = stack.enter_context(PrivatePostgres(cpus=None, settings=settings)).server
        run(args, stack.enter_context(Deployment(server=server, API_RATE_LIMIT="")))


def run(args: argparse.Namespace, deployment: Deployment) -> None:
    """Fill the deployment, then time the downloads and the stats queries; the report on stdout."""
    organization_id, key = deployment.tenant()
    started = time.monotonic()
    print(f"Filling {args.rows:,} task outputs ...", file=sys.stderr)
    fill = FILL % {"org": f"'{organization_id}'", "rows": args.rows, "flows": max(1, args.rows // 100)}
    deployment.psql(fill)
    deployment.psql("ANALYZE")
    print(f"... in {time.monotonic() - started:.0f} s", file=sys.stderr)
    base = deployment.daphne()
    pid = deployment.servers[-1].pid
    results = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=600) as client:
        times = timed_gets(client, "/api/v1/task-outputs", 20)
        baseline = sorted(times)[len(times) // 2]
        print(f"list page (baseline): {baseline:.1f} ms", file=sys.stderr)
        sparse = {"format": "ndjson", "fields": "id,status,summary"}
        for params in () if args.stats_only else ({"format": "ndjson"}, {"format": "csv"}, sparse):
            result = download(client, pid, params)
            results.append(result)
            print(json.dumps(result), file=sys.stderr)
        stats = {}
        for params in STATS_QUERIES:
            label = "&".join(f"{k}={v}" for k, v in params.items())
            path = f"/api/v1/task-outputs/stats?{label}"
            times = timed_gets(client, path, args.repeat)
            median = sorted(times)[len(times) // 2]
            groups = len(client.get(path).json()["groups"])
            stats[label] = {"groups": groups, "median_ms": round(median, 1), "max_ms": round(max(times), 1)}
            print(f"stats {label}: {stats[label]}", file=sys.stderr)
    report = {"rows": args.rows, "list_page_ms": round(baseline, 1), "exports": results, "stats": stats}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
