"""`manage.py seed_demo`: a demo organization, staff user, API key and some executions to look at.

Safe to run again: the organization and its data are kept, the user's password and the API key are
replaced (the old demo key is revoked) so that what is printed always works.
"""

from __future__ import annotations

import json
import secrets
import shlex
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution
from flow_executions.services import flow_execution_create
from superai_flow.commands import SystemCommand
from superai_flow.organizations.models import Membership, Organization
from superai_flow.organizations.services import api_key_create, api_key_revoke
from task_outputs.services import task_output_create

ORGANIZATION = "Demo"
USERNAME = "demo"
KEY_NAME = "seed_demo"

DEMO_FLOWS = [
    (
        "document-ingest",
        3,
        Status.COMPLETED,
        [
            ("fetch", {"status_code": 200, "response_time_ms": 450}, ["http"]),
            ("extract-text", {"pages": 10, "word_count": 5000}, ["pdf", "ocr"]),
            ("validate", {"valid_rows": 950, "invalid_rows": 50}, ["quality"]),
        ],
    ),
    (
        "invoice-processing",
        1,
        Status.RUNNING,
        [
            ("parse-invoice", {"line_items": 14, "currency": "EUR", "total": 1290.5}, ["finance"]),
        ],
    ),
    ("nightly-report", 2, Status.FAILED, [("query-warehouse", {"rows": 0, "error": "timeout"}, ["sql"])]),
]


class Command(SystemCommand):
    help = "Create (or refresh) a demo organization, user, API key and executions, and print how to use them."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="Where the server will listen.")

    def handle(self, *args, base_url: str, **options):
        base_url = self._checked(base_url).rstrip("/")
        organization, _ = Organization.objects.get_or_create(name=ORGANIZATION)
        password = secrets.token_urlsafe(12)
        user = get_user_model().objects.filter(username=USERNAME).first() or get_user_model()(username=USERNAME)
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        Membership.objects.get_or_create(organization=organization, user=user)
        for old_key in organization.api_keys.filter(name=KEY_NAME, revoked_at__isnull=True):
            api_key_revoke(api_key=old_key)
        _, raw_key = api_key_create(organization=organization, name=KEY_NAME)
        if not FlowExecution.objects.filter(organization=organization).exists():
            self._create_executions(organization)
        # The printed curl needs a running execution; someone may have finished the demo's since.
        running = FlowExecution.objects.filter(organization=organization, status=Status.RUNNING).first()
        if running is None:
            flow_name, version, status, _ = next(flow for flow in DEMO_FLOWS if flow[2] == Status.RUNNING)
            running = self._create_execution(organization, flow_name, version, status)
        self._print(base_url, organization, password, raw_key, running)

    @staticmethod
    def _checked(base_url: str) -> str:
        """The URL the printed links and curl commands start with: http(s), a host, a valid port if any."""
        try:
            parts = urlsplit(base_url)
            valid = (
                parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port is None or parts.port > 0)
            )
        except ValueError:  # a port that is not a number up to 65535, unbalanced brackets
            valid = False
        if not valid or any(character.isspace() for character in base_url):
            raise CommandError(
                f"--base-url must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8000 "
                f"(got {base_url!r})."
            )
        return base_url

    def _create_execution(self, organization: Organization, flow_name: str, version: int, status: str):
        flow_execution, _ = flow_execution_create(
            organization_id=organization.id,
            flow_name=flow_name,
            flow_version=version,
            status=status,
            input={"source": f"s3://demo-bucket/{flow_name}/input.json"},
        )
        return flow_execution

    def _create_executions(self, organization: Organization) -> None:
        for flow_name, version, status, outputs in DEMO_FLOWS:
            flow_execution = self._create_execution(organization, flow_name, version, status)
            for task_name, summary, tags in outputs:
                task_output_create(
                    organization_id=organization.id,
                    flow_execution_id=flow_execution.id,
                    task_name=task_name,
                    summary=summary,
                    tags=tags,
                    status=Status.COMPLETED,
                    output={"result": summary, "artifacts": []},
                )

    def _print(self, base_url, organization, password, raw_key, flow_execution) -> None:
        body = {
            "organization_id": str(organization.id),
            "flow_execution_id": str(flow_execution.id),
            "task_name": "summarize",
            "status": "completed",
            "summary": {"pages": 12, "word_count": 5400},
            "output": {"text": "A short summary of the document."},
            "tags": ["demo"],
        }
        auth = shlex.quote(f"Authorization: Bearer {raw_key}")
        self.stdout.write(
            f"""
SuperAI Flow demo is ready.

  Organization  {organization.name} ({organization.id})
  User          {USERNAME!r} with password {password!r}
  Pages         {base_url}/login/  (then {base_url}/executions/)
  Admin         {base_url}/admin/
  API key       {raw_key}

For the API examples of the README, in another terminal:

export BASE={shlex.quote(base_url)}
export KEY={shlex.quote(raw_key)}
export ORG={shlex.quote(str(organization.id))}
export FLOW={shlex.quote(str(flow_execution.id))}

Create a task output (while the server runs):

curl -sS -X POST {base_url}/api/v1/task-outputs \\
  -H {auth} \\
  -H 'Content-Type: application/json' \\
  -d {shlex.quote(json.dumps(body))}

List the outputs of that flow execution:

curl -sS -H {auth} '{base_url}/api/v1/task-outputs?flow_execution_id={flow_execution.id}'
"""
        )
