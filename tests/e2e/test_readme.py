"""The README's examples work as printed."""

from __future__ import annotations

import re
import selectors
import subprocess
import sys

import httpx
import pytest

from tests.e2e.servers import PROJECT_DIR

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def readme_block(marker: str) -> str:
    readme = (PROJECT_DIR / "README.md").read_text()
    return re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", readme, re.S).group(1)


def read_line(process: subprocess.Popen, timeout: float = 15) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout)
    assert ready, f"no output within {timeout} s: {process.stderr.read() if process.poll() is not None else ''}"
    return process.stdout.readline()


def test_the_watch_example_prints_new_outputs(daphne_server, tenant, tmp_path):
    organization_id, key = tenant
    auth = {"Authorization": f"Bearer {key}"}
    flow = httpx.post(
        f"{daphne_server.url}/api/v1/flow-executions", json={"organization_id": organization_id, "flow_name": "doc"},
        headers=auth,
    ).json()  # fmt: skip
    script = tmp_path / "watch.py"
    script.write_text(readme_block("watch-example"))
    ws_url = daphne_server.url.replace("http", "ws", 1)
    command = [sys.executable, str(script), ws_url, key, flow["id"]]
    watcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert read_line(watcher).startswith("watching")
        body = {"organization_id": organization_id, "flow_execution_id": flow["id"], "task_name": "summarize",
                "summary": {"pages": 12}}  # fmt: skip
        created = httpx.post(f"{daphne_server.url}/api/v1/task-outputs", json=body, headers=auth).json()
        line = read_line(watcher)
    finally:
        watcher.kill()
        watcher.wait()

    assert line.startswith("task_output.created ")
    assert created["id"] in line and '"pages": 12' in line


def test_the_worker_example_runs_the_whole_cycle(daphne_server, tenant, tmp_path):
    organization_id, key = tenant
    script = tmp_path / "worker.py"
    script.write_text(readme_block("worker-example"))

    run = subprocess.run(
        [sys.executable, str(script), daphne_server.url, key, organization_id],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "POST flow-executions 201 running",
        "POST task-executions 201 running",
        "POST task-outputs 201 completed",
        "PATCH task-executions 200 completed",
        "PATCH flow-executions 200 completed",
    ]
    flows = httpx.get(f"{daphne_server.url}/api/v1/flow-executions", headers={"Authorization": f"Bearer {key}"})
    assert flows.json()["results"][0]["status"] == "completed"
