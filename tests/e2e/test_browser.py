"""The pages in a real browser (Debian's Chromium driven by Playwright) against a real daphne process.

Screenshots of each page go to SCREENSHOT_DIR (default var/screenshots), which CI prints; those of the
pictures (09 to 11) are the ones in docs/images.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from flow_executions.lifecycle import Status
from flow_executions.models import TaskExecution
from flow_executions.services import task_execution_create, task_execution_update
from superai_flow.organizations.models import Membership, Organization
from superai_flow.organizations.services import api_key_create
from task_outputs.models import TaskOutput
from task_outputs.services import task_output_create
from tests.e2e.servers import PROJECT_DIR, DaphneServer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(os.environ.get("SCREENSHOT_DIR") or PROJECT_DIR / "var" / "screenshots")
PASSWORD = "a long enough password"
APPEARS = 2_000  # ms: how soon a new output must show on an open page
REDRAWN = 6_000  # ms: how soon a new attempt, which sends no live message, must show (the page redraws every 4 s)


@pytest.fixture(scope="module", autouse=True)
def orm_beside_playwright():
    """Playwright's sync API keeps an event loop running in this thread; the ORM calls these tests make
    between browser steps are plain synchronous ones, which Django allows once told."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def chromium(orm_beside_playwright):
    if not shutil.which(CHROMIUM):
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        yield browser
        browser.close()


@pytest.fixture
def tenant_with_user(transactional_db, make_flow):
    organization = Organization.objects.create(name="Browser Co")
    user = User.objects.create_superuser("viewer", password=PASSWORD)
    Membership.objects.create(organization=organization, user=user)
    key = api_key_create(organization=organization, name="worker")[1]
    flow = make_flow(organization, flow_name="document-ingest", status=Status.RUNNING)
    task_output_create(organization_id=organization.id, flow_execution_id=flow.id, task_name="fetch",
                       summary={"status_code": 200}, tags=["http"], status=Status.COMPLETED)  # fmt: skip
    return key, flow


def sign_in(page, server: DaphneServer) -> None:
    page.goto(f"{server.url}/executions/")
    page.screenshot(path=SHOTS / "01-sign-in.png", full_page=True)
    page.get_by_label("Username").fill("viewer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/executions/")


def post_output(server: DaphneServer, key: str, flow, **fields) -> str:
    body = {"organization_id": str(flow.organization_id), "flow_execution_id": str(flow.id), "summary": {}, **fields}
    response = httpx.post(f"{server.url}/api/v1/task-outputs", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_an_execution_page_shows_new_outputs_live_and_catches_up_after_a_restart(
    chromium, tenant_with_user, make_output
):
    key, flow = tenant_with_user
    server = DaphneServer().start()
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    try:
        sign_in(page, server)
        page.locator("[data-connection][data-state=live]").wait_for()
        page.screenshot(path=SHOTS / "02-executions.png", full_page=True)

        page.get_by_role("link", name="document-ingest").click()
        page.locator("[data-connection][data-state=live]").wait_for()
        new_id = post_output(server, key, flow, task_name="summarize", status="completed",
                             summary={"pages": 12, "word_count": 5400}, tags=["demo"])  # fmt: skip
        card = page.locator(f'[data-output-id="{new_id}"]')
        card.wait_for(timeout=APPEARS)
        assert "5,400" in card.inner_text() and "demo" in card.inner_text()
        page.screenshot(path=SHOTS / "03-execution-live.png", full_page=True)

        # The server goes away: the page says so, and two outputs are written meanwhile.
        server.stop()
        page.locator("[data-connection][data-state=reconnecting]").wait_for(timeout=5_000)
        page.screenshot(path=SHOTS / "04-execution-reconnecting.png", full_page=True)
        missed = [str(make_output(flow, task_name=f"while-away-{n}", summary={"n": n}).id) for n in range(2)]
        server = DaphneServer(port=server.port).start()

        for output_id in missed:
            page.locator(f'[data-output-id="{output_id}"]').wait_for(timeout=20_000)
        page.locator("[data-connection][data-state=live]").wait_for()
        assert page.locator("[data-output-count]").inner_text() == "4"

        httpx.patch(f"{server.url}/api/v1/flow-executions/{flow.id}", json={"status": "completed"},
                    headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        page.locator("[data-flow-status].completed").wait_for(timeout=APPEARS)
        page.screenshot(path=SHOTS / "05-execution-after-reconnect.png", full_page=True)
    finally:
        page.close()
        server.stop()


def test_history_panel_fills_live_and_admin_filters_by_status(chromium, tenant_with_user):
    key, flow = tenant_with_user
    with DaphneServer() as server:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, server)
        page.locator("[data-connection][data-state=live]").wait_for()

        new_id = post_output(server, key, flow, task_name="classify", status="failed")
        page.locator(f'[data-recent] [data-output-id="{new_id}"]').wait_for(timeout=APPEARS)
        page.locator(f'[data-flow-id="{flow.id}"] [data-count]:text("2")').wait_for(timeout=APPEARS)
        page.screenshot(path=SHOTS / "06-executions-live-panel.png", full_page=True)

        page.goto(f"{server.url}/admin/task_outputs/taskoutput/")
        page.locator("#changelist-filter").get_by_role("link", name="Failed").click()
        page.wait_for_url("**status__exact=failed**")
        listed = page.locator("#result_list tbody tr")
        assert listed.count() == 1 and "classify" in listed.first.inner_text()
        page.screenshot(path=SHOTS / "07-admin-filtered.png", full_page=True)

        phone = chromium.new_page(viewport={"width": 390, "height": 844})
        phone.context.add_cookies(page.context.cookies())
        phone.goto(f"{server.url}/executions/{flow.id}/")
        phone.locator("[data-connection][data-state=live]").wait_for()
        phone.screenshot(path=SHOTS / "08-execution-phone.png", full_page=True)
        phone.close()
        page.close()


def record_attempt(
    flow, task_name: str, attempt: int, status: str, started: float | None, finished: float | None = None
):
    """An attempt that started and finished that many seconds ago (None: not yet)."""
    now = timezone.now()
    at = {
        name: now - timedelta(seconds=ago) for name, ago in (("started_at", started), ("finished_at", finished)) if ago
    }
    record = task_execution_create(flow_execution=flow, task_name=task_name, attempt=attempt, status=status)[0]
    task_execution_update(task_execution=record, actor="test", **at)
    TaskExecution.objects.filter(pk=record.pk).update(created_at=at.get("started_at", now))


def test_the_timeline_grows_running_bars_and_shows_new_attempts_without_a_reload(chromium, tenant_with_user):
    key, flow = tenant_with_user
    record_attempt(flow, "fetch", 1, Status.COMPLETED, 95, 81)
    record_attempt(flow, "parse", 1, Status.FAILED, 80, 64)
    record_attempt(flow, "parse", 2, Status.COMPLETED, 62, 31)
    record_attempt(flow, "summarize", 1, Status.RUNNING, 30)
    record_attempt(flow, "classify", 1, Status.IN_PROGRESS, 12)
    record_attempt(flow, "publish", 1, Status.QUEUED, None)
    headers = {"Authorization": f"Bearer {key}"}
    with DaphneServer() as server:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, server)
        page.goto(f"{server.url}/executions/{flow.id}/")
        page.locator("[data-connection][data-state=live]").wait_for()
        page.evaluate("window.notReloaded = true")
        timeline = page.locator("[data-timeline] svg")
        assert timeline.locator("g.attempt").count() == 6 and timeline.locator(".bar").count() == 5
        assert timeline.get_attribute("role") == "img"
        assert (
            timeline.locator("g.attempt.failed title").text_content().startswith("parse, attempt 1: Failed, ran 16.0 s")
        )
        assert "Queued · not started" in timeline.locator("g.attempt.queued").text_content()

        growing = "[data-timeline] g.running .bar"
        width = float(page.locator(growing).get_attribute("width"))
        page.wait_for_function(
            "([selector, width]) => Number(document.querySelector(selector).getAttribute('width')) > width + 2",
            arg=[growing, width],
            timeout=3_000,
        )

        # A new attempt sends no live message: the page's redraw while the flow runs brings it.
        body = {"organization_id": str(flow.organization_id), "flow_execution_id": str(flow.id)}
        response = httpx.post(f"{server.url}/api/v1/task-executions", headers=headers,
                              json={**body, "task_name": "publish", "attempt": 2, "status": "running"})  # fmt: skip
        assert response.status_code == 201, response.text
        page.locator("[data-timeline] g.attempt", has_text="publish #2").wait_for(timeout=REDRAWN)
        # A task output's live message redraws it at once: here the finished summarize attempt.
        summarize = TaskExecution.objects.get(flow_execution=flow, task_name="summarize")
        task_execution_update(task_execution=summarize, actor="test", status=Status.COMPLETED)
        post_output(server, key, flow, task_name="summarize", status="completed", task_execution_id=str(summarize.id))
        page.locator("[data-timeline] g.attempt.completed", has_text="summarize #1").wait_for(timeout=APPEARS)
        assert page.evaluate("window.notReloaded") is True

        section = page.locator("section", has=page.locator("[data-timeline]"))
        section.screenshot(path=SHOTS / "09-timeline.png")
        page.close()


def test_the_history_charts_outputs_per_hour_and_a_chosen_summary_value(chromium, tenant_with_user):
    _, flow = tenant_with_user
    rng = random.Random(13)
    now = timezone.now()
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    summarized = set()  # the hours with a summarize output
    for hours_ago in range(24):
        for _ in range(rng.randint(2, 9)):
            task = rng.choice(["fetch", "summarize", "classify"])
            status = rng.choices([Status.COMPLETED, Status.FAILED, Status.STALE], weights=[16, 3, 1])[0]
            pages = rng.randint(4, 40)
            summary = {"pages": pages, "words": pages * rng.randint(300, 500)}
            output = task_output_create(
                organization_id=flow.organization_id, flow_execution_id=flow.id, task_name=task, status=status,
                summary=summary,
            )[0]  # fmt: skip
            moment = min(this_hour - timedelta(hours=hours_ago, minutes=-rng.randint(0, 59)), now)
            TaskOutput.objects.filter(pk=output.pk).update(created_at=moment)
            if task == "summarize":
                summarized.add(hours_ago)
    with DaphneServer() as server:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, server)

        per_hour = page.locator("section", has=page.locator("#per-hour-title"))
        chart = per_hour.locator("svg[role=img]")
        assert chart.locator("g.column").count() == 24
        total = TaskOutput.objects.filter(organization_id=flow.organization_id).count()
        assert chart.locator("desc").text_content().startswith(f"{total} task outputs in the last 24 hours: ")
        assert chart.locator(".legend text").first.text_content().startswith("Completed ")
        per_hour.screenshot(path=SHOTS / "10-outputs-per-hour.png")

        summary = page.locator("#summary-chart")
        summary.get_by_label("Task", exact=True).fill("summarize")
        summary.get_by_label("Summary key").fill("words")
        summary.get_by_role("button", name="Show").click()
        page.wait_for_url("**key=words**")
        picture = summary.locator("svg[role=img]")
        assert picture.locator("title").first.text_content() == "summary.words per hour, last 24 hours (UTC)"
        assert picture.locator("g.hour").count() == len(summarized)
        assert " UTC: average " in picture.locator("g.hour title").first.text_content()
        summary.screenshot(path=SHOTS / "11-summary-chart.png")

        summary.get_by_label("Summary key").fill("words..x")
        summary.get_by_role("button", name="Show").click()
        summary.get_by_text("“words..x” is not a summary key").wait_for()
        page.close()


def test_pages_fall_back_to_server_sent_events_when_websockets_are_blocked(chromium, tenant_with_user):
    key, flow = tenant_with_user
    with DaphneServer() as server:
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        # As a proxy that drops WebSockets: every handshake fails before it opens; plain HTTP goes through.
        context.route_web_socket(re.compile(".*"), lambda socket: socket.close(code=4000))
        page = context.new_page()
        try:
            sign_in(page, server)
            over_sse = page.locator("[data-connection][data-state=live][data-transport=sse]")
            over_sse.wait_for(timeout=10_000)
            assert over_sse.inner_text() == "Live · Server-Sent Events"
            new_id = post_output(server, key, flow, task_name="classify", status="completed")
            page.locator(f'[data-recent] [data-output-id="{new_id}"]').wait_for(timeout=APPEARS)

            page.get_by_role("link", name="document-ingest").click()
            over_sse.wait_for(timeout=10_000)
            new_id = post_output(server, key, flow, task_name="summarize", status="completed", summary={"pages": 4})
            page.locator(f'[data-output-id="{new_id}"]').wait_for(timeout=APPEARS)
            page.screenshot(path=SHOTS / "12-execution-over-sse.png", full_page=True)
        finally:
            context.close()
