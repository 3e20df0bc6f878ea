"""Admin with a million task outputs: how long the changelist takes, plain, filtered and searched.

Creates a throwaway PostgreSQL database, fills it with --rows task outputs (generated in SQL: a few
seconds), starts daphne, signs a superuser in through the admin login form, and times each page
--repeat times over HTTP. The baseline is the admin index page, measured in the same run.

    python bench/admin_changelist.py                 # 1,000,000 rows
    python bench/admin_changelist.py --rows 100000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.servers import PROJECT_DIR, free_port

FILL = """
INSERT INTO flow_executions_flowexecution (id, organization_id, flow_name, flow_version, input, status, modified_by,
                                           created_at, updated_at)
SELECT gen_random_uuid(), %(org)s, 'flow-' || (n %% 20), 1, NULL,
       (ARRAY['running','completed','failed'])[1 + n %% 3], 'system',
       now() - (n || ' minutes')::interval, now()
FROM generate_series(1, %(flows)s) AS n;

WITH flows AS (SELECT array_agg(id) AS ids FROM flow_executions_flowexecution)
INSERT INTO task_outputs_taskoutput (id, organization_id, flow_execution_id, flow_version, task_name, status, summary,
                                     output, tags, modified_by, created_at, updated_at, write_txid, write_horizon,
                                     cursor_horizon, revision)
SELECT gen_random_uuid(), %(org)s, flows.ids[1 + n %% cardinality(flows.ids)], 1,
       'task-' || lpad((n %% 50)::text, 2, '0'),
       (ARRAY['completed','completed','completed','failed','running','stale'])[1 + n %% 6],
       jsonb_build_object('pages', n %% 100, 'word_count', n %% 5000),
       jsonb_build_object('text', 'output ' || n),
       jsonb_build_array('batch-' || (n %% 1000), CASE WHEN n %% 2 = 0 THEN 'even' ELSE 'odd' END),
       'system', now() - (n || ' seconds')::interval, now() - (n || ' seconds')::interval, n, n, n, 1
FROM generate_series(1, %(rows)s) AS n, flows;
"""


def psql(database: str, sql: str, *, capture: bool = False) -> str:
    run = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-qAtc", sql],
                         check=True, capture_output=capture, text=True)  # fmt: skip
    return run.stdout.strip() if capture else ""


def manage(env: dict[str, str], *args: str) -> str:
    run = subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    run.check_returncode()
    return run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed) to explore")
    args = parser.parse_args()

    database = f"superai_flow_admin_bench_{os.getpid()}"
    psql("postgres", f"CREATE DATABASE {database}")
    server = None
    try:
        env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}", "LOG_LEVEL": "WARNING"}
        env.pop("REDIS_URL", None)
        manage(env, "migrate", "--noinput")
        org = manage(env, "create_organization", "Bench")
        started = time.monotonic()
        print(f"Filling {args.rows:,} task outputs ...", file=sys.stderr)
        fill = FILL % {"org": f"'{org}'", "rows": args.rows, "flows": max(1, args.rows // 100)}
        psql(database, fill)
        psql(database, "ANALYZE")
        print(f"... in {time.monotonic() - started:.0f} s", file=sys.stderr)
        password = "bench-password-123"
        create_user = (
            "from django.contrib.auth.models import User; "
            f"User.objects.create_superuser('bench', password='{password}')"
        )
        subprocess.run([sys.executable, "manage.py", "shell", "-c", create_user], cwd=PROJECT_DIR, env=env, check=True)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "superai_flow.asgi:application"],
            cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=60, follow_redirects=True) as client:
            for _ in range(100):
                try:
                    login = client.get("/admin/login/")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
            client.post("/admin/login/", data={"username": "bench", "password": password,
                                               "csrfmiddlewaretoken": token, "next": "/admin/"})  # fmt: skip
            some_output = psql(database, "SELECT id FROM task_outputs_taskoutput LIMIT 1 OFFSET 500000", capture=True)
            some_flow = psql(database, "SELECT id FROM flow_executions_flowexecution LIMIT 1 OFFSET 5000", capture=True)
            pages = {
                "admin index (baseline)": "/admin/",
                "task outputs, unfiltered": "/admin/task_outputs/taskoutput/",
                "status = failed": "/admin/task_outputs/taskoutput/?status__exact=failed",
                "status = stale, page 5": "/admin/task_outputs/taskoutput/?status__exact=stale&p=5",
                "task name = task-07": "/admin/task_outputs/taskoutput/?task_name=task-07",
                "created in the past 7 days": "/admin/task_outputs/taskoutput/?created_at__gte="
                + time.strftime("%Y-%m-%d", time.gmtime(time.time() - 7 * 86400)),
                "organization": f"/admin/task_outputs/taskoutput/?organization__id__exact={org}",
                "search: a tag": "/admin/task_outputs/taskoutput/?q=batch-123",
                "search: a task name": "/admin/task_outputs/taskoutput/?q=task-31",
                "search: an output id": f"/admin/task_outputs/taskoutput/?q={some_output}",
                "search: a flow id": f"/admin/task_outputs/taskoutput/?q={some_flow}",
                "one task output": f"/admin/task_outputs/taskoutput/{some_output}/change/",
                "one flow execution (outputs inline)": f"/admin/flow_executions/flowexecution/{some_flow}/change/",
                "flow executions, unfiltered": "/admin/flow_executions/flowexecution/",
            }
            results = {}
            for name, path in pages.items():
                client.get(path)  # warm
                times = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    response = client.get(path)
                    times.append((time.perf_counter() - t) * 1000)
                    assert response.status_code == 200, (path, response.status_code)
                results[name] = {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}
                print(f"{name:40} {results[name]}", file=sys.stderr)
            baseline = results["admin index (baseline)"]["median_ms"]
            for row in results.values():
                row["vs_baseline"] = round(row["median_ms"] / baseline, 1)
        print(json.dumps({"rows": args.rows, "pages": results}, indent=2))
    finally:
        if server:
            server.terminate()
            server.wait(timeout=30)
        if args.keep:
            print(f"Kept the database {database}", file=sys.stderr)
        else:
            psql("postgres", f"DROP DATABASE IF EXISTS {database}")


if __name__ == "__main__":
    main()
