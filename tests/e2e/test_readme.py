"""The README's examples work as printed."""

from __future__ import annotations

import io
import json
import os
import queue
import re
import selectors
import subprocess
import sys
import threading

import httpx
import pytest
from django.core.management import call_command

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


VOLATILE = [
    (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>"),
    (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<time>"),
    (r"sfk_[A-Za-z0-9_-]{43}", "<key>"),
    (r"password '[^']*'", "password <password>"),
    (r"cursor=[A-Za-z0-9_%-]+", "cursor=<cursor>"),
    (r'"request_id":"[0-9a-f]{32}"', '"request_id":<request id>'),
    (r"http://127\.0\.0\.1:\d+", "<base>"),
]


def normalized(text: str) -> str:
    """`text` without what differs from run to run (ids, times, keys, cursors, the server's port)."""
    for pattern, replacement in VOLATILE:
        text = re.sub(pattern, replacement, text)
    return text.strip("\n")


def api_examples() -> list[tuple[str, str, str]]:
    """The README's `<!-- api-example NAME -->` blocks, in order: (name, shell command, printed output).

    A block's command starts with `$ ` and runs on over lines ending in a backslash and through
    here-documents (`<<EOF` ... `EOF`); the rest of the block is what it prints."""
    readme = (PROJECT_DIR / "README.md").read_text()
    examples = []
    for name, block in re.findall(r"<!-- api-example (\w+) -->\n```sh\n(.*?)```", readme, re.S):
        lines = block.splitlines()
        assert lines[0].startswith("$ "), name
        command, heredoc = [lines[0][2:]], "<<EOF" in lines[0]
        for line in lines[1:]:
            if not heredoc and not command[-1].endswith("\\"):
                break
            command.append(line)
            heredoc = (heredoc or "<<EOF" in line) and line != "EOF"
        examples.append((name, "\n".join(command), "\n".join(lines[len(command) :])))
    return examples


def test_the_make_run_sample_is_what_seed_demo_prints():
    printed = io.StringIO()
    call_command("seed_demo", "--base-url", "http://127.0.0.1:8000", stdout=printed)
    readme = (PROJECT_DIR / "README.md").read_text()
    sample = re.search(r"<!-- make-run-output -->\n```text\n(.*?)```", readme, re.S).group(1)

    assert normalized(sample) == normalized(printed.getvalue())


def test_the_api_examples_print_what_the_readme_shows(daphne_server, tenant):
    organization_id, key = tenant
    auth = {"Authorization": f"Bearer {key}"}
    flow = httpx.post(f"{daphne_server.url}/api/v1/flow-executions", headers=auth,
                      json={"organization_id": organization_id, "flow_name": "ingest"}).json()  # fmt: skip
    # As in the README's run: the demo flow execution already holds one matching output.
    earlier = {"organization_id": organization_id, "flow_execution_id": flow["id"], "task_name": "summarize",
               "status": "completed", "summary": {"pages": 11}, "tags": ["demo"]}  # fmt: skip
    assert httpx.post(f"{daphne_server.url}/api/v1/task-outputs", headers=auth, json=earlier).status_code == 201
    env = {**os.environ, "BASE": daphne_server.url, "KEY": key, "ORG": organization_id, "FLOW": flow["id"]}
    examples = api_examples()

    assert [name for name, _, _ in examples] == ["create", "list", "ordered", "export", "stats", "invalid"]
    for name, command, shown in examples:
        run = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=30)
        assert run.returncode == 0 and not run.stderr, (name, run.stderr)
        assert normalized(run.stdout) == normalized(shown), name


def test_the_stream_example_prints_events_as_shown(daphne_server, tenant):
    organization_id, key = tenant
    auth = {"Authorization": f"Bearer {key}"}
    flow = httpx.post(f"{daphne_server.url}/api/v1/flow-executions", headers=auth,
                      json={"organization_id": organization_id, "flow_name": "ingest"}).json()  # fmt: skip
    readme = (PROJECT_DIR / "README.md").read_text()
    block = re.search(r"<!-- stream-example -->\n```sh\n\$ (.*?)\n(.*?)```", readme, re.S)
    command, shown = block.group(1), block.group(2).splitlines()
    env = {**os.environ, "BASE": daphne_server.url, "KEY": key, "FLOW": flow["id"]}
    curl = subprocess.Popen(["sh", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in curl.stdout], daemon=True).start()
    try:
        printed = [lines.get(timeout=15) for _ in range(3)]  # the retry, the first cursor, the blank line
        body = {"organization_id": organization_id, "flow_execution_id": flow["id"], "task_name": "summarize",
                "status": "completed", "summary": {"pages": 12}}  # fmt: skip
        created = httpx.post(f"{daphne_server.url}/api/v1/task-outputs", json=body, headers=auth).json()
        while len(printed) < 6:
            line = lines.get(timeout=15)
            if line == ": heartbeat":  # a heartbeat can come first (15 s after the stream opened), then a blank
                lines.get(timeout=15)
            else:
                printed.append(line)
    finally:
        curl.kill()
        curl.wait()

    def shape(line: str) -> str:
        return re.sub(r"^(id|data): .*", r"\1: ...", line)

    assert [shape(line) for line in printed] == [shape(line) for line in shown[:6]]
    assert printed[4] == "event: task_output.created"
    assert json.loads(printed[5].removeprefix("data: "))["id"] == created["id"]
