"""The people's pages: sign-in, execution history, one execution, the fragments its script loads."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution
from superai_flow.organizations.models import Membership, Organization
from task_outputs import live
from tests.helpers import page_text as text

# --- Signing in and out -------------------------------------------------------------------------


@pytest.mark.django_db
def test_pages_send_strangers_to_sign_in(client):
    response = client.get("/executions/")

    assert response.status_code == 302 and response["Location"] == "/login/?next=/executions/"


@pytest.mark.django_db
def test_signing_in_leads_to_the_executions(client, alice):
    page = text(client.get("/login/"))
    assert 'autocomplete="current-password"' in page and 'for="id_username"' in page

    wrong = client.post("/login/", {"username": "alice", "password": "nope"})
    assert wrong.status_code == 200 and "enter a correct username and password" in wrong.content.decode()

    right = client.post("/login/", {"username": "alice", "password": "correct horse battery", "next": "/executions/"})
    assert right.status_code == 302 and right["Location"] == "/executions/"


def test_signing_out_needs_a_post_and_ends_the_session(browser):
    assert browser.post("/logout/").status_code == 302
    assert browser.get("/executions/").status_code == 302


# --- Execution history --------------------------------------------------------------------------


def test_history_shows_only_my_organizations_flows(browser, org_a, org_b, make_flow):
    mine = make_flow(org_a, flow_name="mine-flow")
    make_flow(org_b, flow_name="their-flow")

    page = text(browser.get("/executions/"))

    assert "mine-flow" in page and "their-flow" not in page
    assert f'data-flow-id="{mine.id}"' in page
    assert 'name="org"' not in page  # one organization: no switcher


def test_history_counts_outputs_and_lists_the_newest(browser, flow_a, make_output):
    for _ in range(3):
        make_output(flow_a, task_name="extract")
    make_output(flow_a, task_name="gone", status=Status.DELETED)

    page = text(browser.get("/executions/"))

    assert re.search(r"data-count>\s*3\s*<", page)
    assert page.count('data-output-id="') == 3 and ">gone<" not in page


def test_history_filters_by_status_and_flow_name(browser, org_a, make_flow):
    make_flow(org_a, flow_name="alpha", status=Status.RUNNING)
    make_flow(org_a, flow_name="beta", status=Status.FAILED)

    assert "beta" not in text(browser.get("/executions/", {"status": "running"}))
    assert "alpha" not in text(browser.get("/executions/", {"flow_name": "beta"}))
    assert "No flow executions match these filters" in text(browser.get("/executions/", {"flow_name": "gamma"}))


def test_history_is_paginated(browser, org_a, make_flow):
    for n in range(26):
        flow = make_flow(org_a, flow_name=f"flow-{n:02}")
        FlowExecution.objects.filter(pk=flow.pk).update(created_at=flow.created_at + timedelta(seconds=n))

    first, second = text(browser.get("/executions/")), text(browser.get("/executions/", {"page": 2}))

    assert "flow-25" in first and "flow-00" not in first and "Page 1 of 2" in first
    assert "flow-00" in second and "flow-25" not in second


def test_members_of_several_organizations_can_switch(browser, alice, org_b, make_flow):
    Membership.objects.create(user=alice, organization=org_b)
    make_flow(org_b, flow_name="b-flow")

    page = text(browser.get("/executions/", {"org": str(org_b.id)}))
    again = text(browser.get("/executions/"))

    assert 'name="org"' in page and "b-flow" in page
    assert "b-flow" in again  # the choice is remembered


def test_a_switch_to_a_foreign_organization_is_ignored(browser, org_b, make_flow):
    make_flow(org_b, flow_name="b-flow")

    assert "b-flow" not in text(browser.get("/executions/", {"org": str(org_b.id)}))


@pytest.mark.django_db
def test_superusers_see_every_organization(client, org_a, org_b):
    client.force_login(User.objects.create_superuser("root", password="x"))

    page = text(client.get("/executions/"))

    assert "Org A" in page and "Org B" in page


def shown(page: str):
    """The organization the switcher says the page shows."""
    return re.search(r'<option value="([^"]+)" selected>', page).group(1)


@pytest.mark.django_db
def test_a_superuser_starts_in_their_organization_with_data_not_the_first_by_name(client, make_flow):
    # The report: `seed_demo`'s superuser, then `create_organization "Acme"`, landed on an empty Acme.
    demo = Organization.objects.create(name="Demo")
    user = User.objects.create_superuser("demo", password="x")
    Membership.objects.create(organization=demo, user=user)
    make_flow(demo, flow_name="document-ingest")
    call_command("create_organization", "Acme", stdout=io.StringIO(), stderr=io.StringIO())
    client.force_login(user)

    page = text(client.get("/executions/"))

    assert ">Acme<" in page and shown(page) == str(demo.id) and "document-ingest" in page


def test_members_start_in_an_organization_with_data(browser, alice, org_a, make_flow):
    busy = Organization.objects.create(name="Org Z")
    Membership.objects.create(user=alice, organization=busy)
    make_flow(busy, flow_name="z-flow")

    assert shown(text(browser.get("/executions/"))) == str(busy.id)


@pytest.mark.django_db
def test_a_superuser_of_no_organization_starts_where_the_newest_execution_is(client, org_a, org_b, make_flow):
    older, newer = make_flow(org_b, flow_name="b-flow"), make_flow(org_a, flow_name="a-flow")
    FlowExecution.objects.filter(pk=older.pk).update(created_at=newer.created_at - timedelta(hours=1))
    make_flow(org_b, flow_name="b-deleted", status=Status.DELETED)  # deleted rows are no data
    Organization.objects.create(name="Acme")
    client.force_login(User.objects.create_superuser("root", password="x"))

    assert shown(text(client.get("/executions/"))) == str(org_a.id)


def test_the_chosen_organization_is_remembered_on_the_next_visit(browser, alice, org_a, org_b, make_flow):
    Membership.objects.create(user=alice, organization=org_b)
    make_flow(org_b, flow_name="b-flow")  # where a first visit would start

    chose = text(browser.get("/executions/", {"org": str(org_a.id)}))
    again = text(browser.get("/executions/"))

    assert shown(chose) == shown(again) == str(org_a.id) and "b-flow" not in again
    assert browser.session["organization_id"] == str(org_a.id)


def test_a_remembered_organization_the_user_may_no_longer_see_is_ignored(browser, alice, org_a, org_b, make_flow):
    Membership.objects.create(user=alice, organization=org_b)
    make_flow(org_b, flow_name="b-flow")
    assert shown(text(browser.get("/executions/", {"org": str(org_b.id)}))) == str(org_b.id)
    Membership.objects.filter(user=alice, organization=org_b).delete()

    page = text(browser.get("/executions/"))

    assert "b-flow" not in page and ">Org A<" in page and "Org B" not in page
    assert browser.session["organization_id"] == str(org_a.id)


@pytest.mark.parametrize("remembered", ["deleted", "not-a-uuid", ""])
def test_a_remembered_organization_that_is_gone_or_garbled_is_ignored(browser, org_a, flow_a, remembered):
    if remembered == "deleted":
        gone = Organization.objects.create(name="Gone")
        remembered = str(gone.id)
        gone.delete()
    session = browser.session
    session["organization_id"] = remembered
    session.save()

    page = text(browser.get("/executions/"))

    assert f'data-flow-id="{flow_a.id}"' in page and browser.session["organization_id"] == str(org_a.id)


@pytest.mark.django_db
def test_users_without_an_organization_are_told_how_to_join(client):
    client.force_login(User.objects.create_user("loner", password="x"))

    assert "add_member" in text(client.get("/executions/"))


def test_history_gives_the_live_script_a_cursor_and_its_feed(browser, org_a):
    page = text(browser.get("/executions/"))

    cursor = re.search(r'data-cursor="([^"]+)"', page).group(1)
    assert live.decode_cursor(cursor) >= 0
    assert f"/ws/task-outputs/summaries/?organization_id={org_a.id}" in page
    assert "superai_flow/executions.js" in page


# --- One execution ------------------------------------------------------------------------------


def test_an_execution_shows_its_outputs_readably(browser, flow_a, make_output):
    make_output(flow_a, task_name="first", summary={"word_count": 5000, "ratio": 0.12345, "ok": True,
                                                   "stats": {"rows": 3, "cols": 4}}, tags=["pdf", "ocr"])  # fmt: skip
    make_output(flow_a, task_name="second", summary="plain words", output={"text": "hello"})

    page = text(browser.get(f"/executions/{flow_a.id}/"))

    assert page.index(">first<") < page.index(">second<")
    assert "5,000" in page and "0.123" in page and ">true<" in page
    assert "<summary>2 keys</summary>" in page and "&quot;rows&quot;: 3" in page
    assert '<li class="tag">pdf</li>' in page and "plain words" in page
    assert "&quot;text&quot;: &quot;hello&quot;" in page
    assert f'data-flow-feed="/ws/flow-executions/{flow_a.id}/"' in page


def test_large_outputs_are_cut_with_a_way_to_see_all(browser, flow_a, make_output):
    output = make_output(flow_a, output={"text": "x" * 30_000})

    page = text(browser.get(f"/executions/{flow_a.id}/"))
    full = browser.get(f"/executions/outputs/{output.id}/output.json")

    assert f"/executions/outputs/{output.id}/output.json" in page and "Show all" in page
    assert "x" * 9_000 in page and "x" * 10_000 not in page  # the preview stops at 10,000 characters
    assert full.status_code == 200 and full.json() == {"text": "x" * 30_000}


def test_other_organizations_and_deleted_executions_are_not_found(browser, flow_b, org_a, make_flow, make_output):
    deleted = make_flow(org_a, status=Status.DELETED)
    theirs = make_output(flow_b)

    for path in (f"/executions/{flow_b.id}/", f"/executions/{deleted.id}/", f"/executions/outputs/{theirs.id}/card/",
                 f"/executions/outputs/{theirs.id}/output.json"):  # fmt: skip
        assert browser.get(path).status_code == 404, path


def test_the_card_fragment_is_the_pages_card(browser, flow_a, make_output):
    output = make_output(flow_a, task_name="fragment", tags=["t"])

    card = text(browser.get(f"/executions/outputs/{output.id}/card/"))

    assert card.strip().startswith(f'<li class="output" data-output-id="{output.id}">')
    assert ">fragment<" in card and '<li class="tag">t</li>' in card
    output.status = Status.DELETED
    output.save()
    assert browser.get(f"/executions/outputs/{output.id}/card/").status_code == 404


# --- add_member ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_add_member_makes_a_membership_and_prints_nothing(org_a):
    User.objects.create_user("bob")
    out, err = io.StringIO(), io.StringIO()

    call_command("add_member", org_a.name, "bob", stdout=out, stderr=err)
    call_command("add_member", str(org_a.id), "bob", stdout=out, stderr=err)  # again: still one

    assert out.getvalue() == "" and err.getvalue() == ""
    assert Membership.objects.filter(user__username="bob", organization=org_a).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(("organization", "username", "message"), [("Nope", "bob", "No organization"),
                                                                    ("Org A", "nobody", "No user")])  # fmt: skip
def test_add_member_explains_what_is_missing(org_a, organization, username, message):
    User.objects.create_user("bob")

    with pytest.raises(CommandError, match=message):
        call_command("add_member", organization, username)
