"""Management commands whose output scripts depend on."""

from __future__ import annotations

import io
import json
import re
import shlex
import uuid

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from flow_executions.models import FlowExecution
from superai_flow.organizations.models import APIKey, Organization
from task_outputs.models import TaskOutput
from tests.helpers import bearer_client, error_of


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_create_organization_prints_the_new_id_last():
    last_line = run("create_organization", "Acme Corp").strip().splitlines()[-1]

    assert Organization.objects.get(id=uuid.UUID(last_line)).name == "Acme Corp"


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_create_organization_refuses_bad_names(name):
    with pytest.raises(CommandError, match="1 to 200 characters"):
        run("create_organization", name)


def test_create_organization_refuses_a_duplicate_name(org_a):
    with pytest.raises(CommandError, match="already exists"):
        run("create_organization", org_a.name)


@pytest.mark.parametrize("by", ["name", "id"])
def test_create_api_key_prints_a_working_key_last(org_a, flow_a, make_output, by):
    make_output(flow_a)
    reference = org_a.name if by == "name" else str(org_a.id)

    key = run("create_api_key", reference, "--name", "ingest-worker").strip().splitlines()[-1]

    assert APIKey.objects.get(name="ingest-worker").organization == org_a
    assert len(bearer_client(key).get("/api/v1/task-outputs").json()["results"]) == 1


def test_create_api_key_refuses_an_unknown_organization(db):
    with pytest.raises(CommandError, match="No organization"):
        run("create_api_key", "Nobody")


@pytest.mark.django_db
def test_seed_demo_prints_working_credentials_and_a_curl_that_creates_an_output():
    output = run("seed_demo", "--base-url", "http://127.0.0.1:8000")

    password = re.search(r"with password '([^']+)'", output).group(1)
    assert User.objects.get(username="demo").check_password(password)
    curl = next(line for line in output.splitlines() if line.startswith("  -d "))
    body = json.loads(shlex.split(curl)[1])
    key = re.search(r"API key\s+(\S+)", output).group(1)

    response = bearer_client(key).post("/api/v1/task-outputs", body)

    assert response.status_code == 201
    assert response.json()["task_name"] == "summarize"


@pytest.mark.django_db
def test_seed_demo_can_run_again_and_revokes_the_previous_demo_key():
    first_key = re.search(r"API key\s+(\S+)", run("seed_demo")).group(1)
    flows, outputs = FlowExecution.objects.count(), TaskOutput.objects.count()

    second_key = re.search(r"API key\s+(\S+)", run("seed_demo")).group(1)

    assert (FlowExecution.objects.count(), TaskOutput.objects.count()) == (flows, outputs)
    assert flows >= 3 and outputs >= 5
    error_of(bearer_client(first_key).get("/api/v1/task-outputs"), 401, "authentication_failed")
    assert bearer_client(second_key).get("/api/v1/task-outputs").status_code == 200


@pytest.mark.django_db
def test_seed_demo_starts_a_new_running_execution_when_the_demos_has_finished():
    run("seed_demo")
    FlowExecution.objects.filter(status="running").update(status="completed")

    output = run("seed_demo")
    body = json.loads(shlex.split(next(line for line in output.splitlines() if line.startswith("  -d ")))[1])
    key = re.search(r"API key\s+(\S+)", output).group(1)

    assert FlowExecution.objects.get(id=body["flow_execution_id"]).status == "running"
    assert bearer_client(key).post("/api/v1/task-outputs", body).status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize(
    "base_url", ["https://flow.example.com", "http://localhost:8001/", "http://web:8000", "http://[::1]:8000"]
)
def test_seed_demo_accepts_http_and_https_urls_with_a_host(base_url):
    output = run("seed_demo", "--base-url", base_url)

    assert f"{base_url.rstrip('/')}/admin/" in output
    assert f"curl -sS -X POST {base_url.rstrip('/')}/api/v1/task-outputs" in output


@pytest.mark.django_db
@pytest.mark.parametrize(
    "base_url",
    ["notaurl", "", "127.0.0.1:8000", "localhost:8000", "ftp://example.com", "http://", "https:///admin",
     "http://:8000", "http://127.0.0.1:port", "http://127.0.0.1:99999", "http://127.0.0.1:0", "http://exa mple.com"],
)  # fmt: skip
def test_seed_demo_refuses_a_base_url_without_an_http_scheme_and_a_host_and_changes_nothing(base_url):
    key = re.search(r"API key\s+(\S+)", run("seed_demo")).group(1)
    password_hash = User.objects.get(username="demo").password
    counts = [model.objects.count() for model in (Organization, User, APIKey, FlowExecution, TaskOutput)]

    with pytest.raises(CommandError, match=r"--base-url .*http://127\.0\.0\.1:8000") as error:
        run("seed_demo", "--base-url", base_url)

    assert repr(base_url) in str(error.value)
    assert [model.objects.count() for model in (Organization, User, APIKey, FlowExecution, TaskOutput)] == counts
    assert User.objects.get(username="demo").password == password_hash
    assert bearer_client(key).get("/api/v1/task-outputs").status_code == 200
