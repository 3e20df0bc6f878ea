"""Django admin: every page renders, filters and search find things, staff see only their organizations,
and actions go through the same lifecycle (and notifications) as the API."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution, TaskExecution
from superai_flow.organizations.models import APIKey, Membership
from superai_flow.organizations.services import api_key_create
from task_outputs.models import TaskOutput
from tests.helpers import bearer_client

CHANGELISTS = [
    "organizations/organization",
    "organizations/membership",
    "organizations/apikey",
    "flow_executions/flowexecution",
    "flow_executions/taskexecution",
    "task_outputs/taskoutput",
]


@pytest.fixture
def world(org_a, org_b, flow_a, flow_b, make_output):
    """Two tenants, each with a flow execution, a task execution, outputs and an API key."""
    outputs = {
        "a_done": make_output(flow_a, task_name="extract", status=Status.COMPLETED, tags=["pdf"]),
        "a_queued": make_output(flow_a, task_name="fetch", status=Status.QUEUED),
        "b_done": make_output(flow_b, task_name="extract", status=Status.COMPLETED, tags=["pdf"]),
    }
    for flow in (flow_a, flow_b):
        TaskExecution.objects.create(organization_id=flow.organization_id, flow_execution=flow, task_name="ocr")
    api_key_create(organization=org_a, name="a-key")
    api_key_create(organization=org_b, name="b-key")
    for org in (org_a, org_b):
        Membership.objects.create(organization=org, user=User.objects.create_user(f"member-of-{org.name}"))
    return outputs


@pytest.fixture
def root(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="x"))
    return client


@pytest.fixture
def staff(org_a) -> Client:
    """Staff, not superuser: may view and change everything of org A, nothing of org B."""
    user = User.objects.create_user("staffer", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__regex=r"^(view|change|add)_"))
    Membership.objects.create(user=user, organization=org_a)
    client = Client()
    client.force_login(user)
    return client


def admin_url(model: str, suffix: str = "") -> str:
    return f"/admin/{model}/{suffix}"


def rows(response) -> int:
    """How many records the changelist shows."""
    assert response.status_code == 200, response.status_code
    page = response.content.decode()
    if 'id="result_list"' not in page:
        return 0
    body = page.split('id="result_list"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return body.count("<tr")


@pytest.mark.parametrize("model", CHANGELISTS)
def test_every_changelist_and_change_page_renders(root, world, model):
    changelist = root.get(admin_url(model))
    assert changelist.status_code == 200
    first = re.search(rf'href="/admin/{model}/([0-9a-f-]+)/change/', changelist.content.decode()).group(1)

    assert root.get(admin_url(model, f"{first}/change/")).status_code == 200


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, 3),
        ({"status__exact": "completed"}, 2),
        ({"status__exact": "queued"}, 1),
        ({"task_name": "fetch"}, 1),
        ({"created_at__gte": "2000-01-01 00:00:00+00:00"}, 3),
        ({"q": "pdf"}, 2),
        ({"q": "extract"}, 2),
        ({"q": "nothing"}, 0),
    ],
)
def test_task_outputs_can_be_filtered_and_searched(root, world, query, expected):
    assert rows(root.get(admin_url("task_outputs/taskoutput"), query)) == expected


def test_task_outputs_can_be_found_by_their_own_or_their_flows_id(root, world, flow_a):
    url = admin_url("task_outputs/taskoutput")

    assert rows(root.get(url, {"q": str(world["a_done"].id)})) == 1
    assert rows(root.get(url, {"q": str(flow_a.id)})) == 2


def test_the_organization_filter_narrows_the_list(root, world, org_b):
    assert rows(root.get(admin_url("task_outputs/taskoutput"), {"organization__id__exact": str(org_b.id)})) == 1


def test_json_is_shown_pretty_and_read_only(root, world):
    page = root.get(admin_url("task_outputs/taskoutput", f"{world['a_done'].id}/change/")).content.decode()

    assert "<pre" in page and "&quot;pages&quot;: 1" in page
    assert 'name="summary"' not in page  # not an editable field


def test_a_flow_execution_page_shows_its_newest_outputs_inline(root, flow_a, make_output):
    for n in range(25):
        make_output(flow_a, task_name=f"task-{n:02}")

    page = root.get(admin_url("flow_executions/flowexecution", f"{flow_a.id}/change/")).content.decode()

    assert "task-24" in page and "task-05" in page and "task-04" not in page  # the newest 20


# --- Staff who are not superusers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "mine"),
    [
        ("task_outputs/taskoutput", 2),
        ("flow_executions/flowexecution", 1),
        ("flow_executions/taskexecution", 1),
        ("organizations/organization", 1),
        ("organizations/membership", 2),
        ("organizations/apikey", 1),
    ],
)
def test_staff_see_only_their_organizations(staff, world, model, mine):
    assert rows(staff.get(admin_url(model))) == mine


def test_staff_cannot_open_another_organizations_records(staff, world, flow_b):
    for path in (
        admin_url("task_outputs/taskoutput", f"{world['b_done'].id}/change/"),
        admin_url("flow_executions/flowexecution", f"{flow_b.id}/change/"),
    ):
        response = staff.get(path)
        assert response.status_code == 302 and response["Location"] == "/admin/", path


def test_staff_can_only_create_keys_for_their_organizations(staff, org_a, org_b):
    form = staff.get(admin_url("organizations/apikey", "add/")).content.decode()

    assert str(org_a.id) in form and str(org_b.id) not in form


# --- Actions ------------------------------------------------------------------------------------


def act(client, model: str, action: str, *records):
    data = {"action": action, "_selected_action": [str(record.pk) for record in records]}
    return client.post(admin_url(model), data, follow=True)


def test_mark_stale_follows_the_lifecycle(root, world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = act(root, "task_outputs/taskoutput", "mark_stale", world["a_done"], world["a_queued"])

    page = response.content.decode()
    assert "Marked stale: 1." in page and "from queued to stale" in page
    world["a_done"].refresh_from_db()
    world["a_queued"].refresh_from_db()
    assert (world["a_done"].status, world["a_queued"].status) == ("stale", "queued")
    assert world["a_done"].modified_by.startswith("user:") and world["a_done"].revision == 2
    assert len(callbacks) == 1  # watchers hear about the change, as with the API


def test_soft_delete_hides_but_keeps(root, world, client_a):
    act(root, "task_outputs/taskoutput", "soft_delete", world["a_done"])

    assert TaskOutput.objects.get(pk=world["a_done"].pk).status == Status.DELETED
    assert client_a.get(f"/api/v1/task-outputs/{world['a_done'].id}").status_code == 404
    assert rows(root.get(admin_url("task_outputs/taskoutput"), {"status__exact": "deleted"})) == 1


def test_flow_executions_can_be_soft_deleted_and_marked_stale(root, org_a, make_flow):
    done = make_flow(org_a, status=Status.COMPLETED)
    running = make_flow(org_a, status=Status.RUNNING)

    act(root, "flow_executions/flowexecution", "mark_stale", done, running)
    act(root, "flow_executions/flowexecution", "soft_delete", running)

    assert FlowExecution.objects.get(pk=done.pk).status == Status.STALE
    assert FlowExecution.objects.get(pk=running.pk).status == Status.DELETED


def test_staff_actions_cannot_reach_other_organizations(staff, world):
    act(staff, "task_outputs/taskoutput", "soft_delete", world["b_done"])

    assert TaskOutput.objects.get(pk=world["b_done"].pk).status == Status.COMPLETED


def test_records_are_not_hard_deleted_from_admin(root, world):
    assert root.get(admin_url("task_outputs/taskoutput", f"{world['a_done'].id}/delete/")).status_code == 403
    assert "delete_selected" not in root.get(admin_url("task_outputs/taskoutput")).content.decode()


# --- API keys -----------------------------------------------------------------------------------


def test_adding_a_key_shows_it_once_and_it_works(root, org_a, flow_a, make_output):
    make_output(flow_a)

    form = {"organization": str(org_a.id), "name": "ci", "scopes": "read"}
    response = root.post(admin_url("organizations/apikey", "add/"), form, follow=True)

    key = re.search(r"The new API key is (sfk_[A-Za-z0-9_-]{43})", response.content.decode()).group(1)
    assert bearer_client(key).get("/api/v1/task-outputs").status_code == 200
    assert APIKey.objects.get(name="ci").scopes == "read"
    assert key not in root.get(admin_url("organizations/apikey")).content.decode()
    assert APIKey.objects.get(name="ci").key_hash != key


def test_revoking_a_key_stops_it(root, org_a):
    api_key, raw = api_key_create(organization=org_a, name="old")

    act(root, "organizations/apikey", "revoke", api_key)

    assert bearer_client(raw).get("/api/v1/task-outputs").status_code == 401
