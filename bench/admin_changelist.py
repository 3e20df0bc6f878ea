"""Admin with a million task outputs: how long the changelist takes, plain, filtered and searched.

Deploys a throwaway PostgreSQL database like production (bench/common.py: the service as a runtime role
under row-level security), fills it with --rows task outputs (generated in SQL, about a minute for a
million), starts daphne, signs a superuser in through the admin login form, and times each page
--repeat times over HTTP. The baseline is the admin index page, measured in the same run.

    python bench/admin_changelist.py                 # 1,000,000 rows
    python bench/admin_changelist.py --rows 100000
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time

import httpx
from common import Deployment, psql, timed_gets

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
       jsonb_build_array('batch-' || (n %% 1000), CASE WHEN n %% 2 = 0 THEN 'even' ELSE 'odd' END,
                         'run-' || (n / 1000)),
       'system', now() - (n || ' seconds')::interval, now() - (n || ' seconds')::interval, n, n, n, 1
FROM generate_series(1, %(rows)s) AS n, flows;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    with Deployment() as deployment:
        org = deployment.manage("create_organization", "Bench")
        started = time.monotonic()
        print(f"Filling {args.rows:,} task outputs ...", file=sys.stderr)
        psql(deployment.database, FILL % {"org": f"'{org}'", "rows": args.rows, "flows": max(1, args.rows // 100)})
        psql(deployment.database, "ANALYZE")
        print(f"... in {time.monotonic() - started:.0f} s", file=sys.stderr)
        password = "bench-password-123"
        create_user = "from django.contrib.auth.models import User; User.objects.create_superuser"
        deployment.manage("shell", "-c", f"{create_user}('bench', password='{password}')")
        base = deployment.daphne()
        with httpx.Client(base_url=base, timeout=60, follow_redirects=True) as client:
            login = client.get("/admin/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
            client.post("/admin/login/", data={"username": "bench", "password": password,
                                               "csrfmiddlewaretoken": token, "next": "/admin/"})  # fmt: skip
            some_output = psql(deployment.database, "SELECT id FROM task_outputs_taskoutput LIMIT 1 OFFSET 500000",
                               capture=True)  # fmt: skip
            some_flow = psql(deployment.database, "SELECT id FROM flow_executions_flowexecution LIMIT 1 OFFSET 5000",
                             capture=True)  # fmt: skip
            pages = pages_under_test(org, some_output, some_flow)
            results = {}
            for name, path in pages.items():
                times = timed_gets(client, path, args.repeat)
                results[name] = {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}
                print(f"{name:40} {results[name]}", file=sys.stderr)
            baseline = results["admin index (baseline)"]["median_ms"]
            for row in results.values():
                row["vs_baseline"] = round(row["median_ms"] / baseline, 1)
        print(json.dumps({"rows": args.rows, "pages": results}, indent=2))


def pages_under_test(org: str, some_output: str, some_flow: str) -> dict[str, str]:
    seven_days_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 7 * 86400))
    return {
        "admin index (baseline)": "/admin/",
        "task outputs, unfiltered": "/admin/task_outputs/taskoutput/",
        "status = failed": "/admin/task_outputs/taskoutput/?status__exact=failed",
        "status = stale, page 5": "/admin/task_outputs/taskoutput/?status__exact=stale&p=5",
        "task name = task-07": "/admin/task_outputs/taskoutput/?task_name=task-07",
        "created in the past 7 days": f"/admin/task_outputs/taskoutput/?created_at__gte={seven_days_ago}",
        "organization": f"/admin/task_outputs/taskoutput/?organization__id__exact={org}",
        "search: a tag": "/admin/task_outputs/taskoutput/?q=batch-123",
        "search: a task name": "/admin/task_outputs/taskoutput/?q=task-31",
        "search: an output id": f"/admin/task_outputs/taskoutput/?q={some_output}",
        "search: a flow id": f"/admin/task_outputs/taskoutput/?q={some_flow}",
        "one task output": f"/admin/task_outputs/taskoutput/{some_output}/change/",
        "one flow execution (outputs inline)": f"/admin/flow_executions/flowexecution/{some_flow}/change/",
        "flow executions, unfiltered": "/admin/flow_executions/flowexecution/",
    }


if __name__ == "__main__":
    main()
