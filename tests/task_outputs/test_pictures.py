"""The pages' pictures: the timeline of a flow execution, task outputs per hour, a summary value over time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from flow_executions.lifecycle import Status
from flow_executions.models import TaskExecution
from flow_executions.services import task_execution_create, task_execution_update
from superai_flow.organizations.models import Membership
from task_outputs import pictures, views
from task_outputs.models import TaskOutput
from tests.helpers import connection_as
from tests.helpers import page_text as text


def picture(page: str, prefix: str) -> str:
    """The SVG picture whose ids start with `prefix` (tl, ph or sc)."""
    return re.search(rf'<svg [^>]*aria-labelledby="{prefix}-title {prefix}-desc".*?</svg>', page, re.DOTALL).group(0)


def titles(page: str) -> list[str]:
    return re.findall(r"<title>([^<]*)</title>", page)


def attempt(flow, task_name: str, number: int, status: str, start: datetime | None, finish: datetime | None = None):
    record = task_execution_create(flow_execution=flow, task_name=task_name, attempt=number, status=status)[0]
    task_execution_update(task_execution=record, actor="test", started_at=start, finished_at=finish)
    TaskExecution.objects.filter(pk=record.pk).update(created_at=start or timezone.now())
    return record


def output_at(make_output, flow, moment: datetime, **fields) -> TaskOutput:
    output = make_output(flow, **fields)
    TaskOutput.objects.filter(pk=output.pk).update(created_at=moment)
    return output


# --- The timeline --------------------------------------------------------------------------------


def test_the_timeline_draws_a_labeled_bar_per_attempt_and_a_marker_for_queued_ones(browser, org_a, make_flow):
    flow = make_flow(org_a, status=Status.RUNNING)
    start = timezone.now() - timedelta(seconds=30)
    attempt(flow, "extract", 1, Status.FAILED, start, start + timedelta(seconds=2))
    attempt(flow, "extract", 2, Status.COMPLETED, start + timedelta(seconds=3), start + timedelta(seconds=8.5))
    attempt(flow, "summarize", 1, Status.RUNNING, start + timedelta(seconds=9))
    attempt(flow, "publish", 1, Status.QUEUED, None)
    gone = attempt(flow, "gone", 1, Status.COMPLETED, start, start + timedelta(seconds=1))
    task_execution_update(task_execution=gone, actor="test", status=Status.DELETED)

    page = text(browser.get(f"/executions/{flow.id}/"))

    timeline = picture(page, "tl")
    assert timeline.startswith('<svg viewBox="0 0 960 ') and 'role="img"' in timeline
    assert '<title id="tl-title">Timeline of task executions</title>' in timeline
    assert timeline.count('<g class="attempt ') == 4 and "gone" not in timeline
    assert timeline.count('class="bar"') == 3 and timeline.count('class="marker"') == 1
    hms = {n: (start + timedelta(seconds=n)).astimezone(UTC).strftime("%H:%M:%S") for n in (0, 2, 3, 8.5, 9)}
    failed, completed, running, queued = titles(timeline)
    assert failed == f"extract, attempt 1: Failed, ran 2.0 s ({hms[0]} to {hms[2]} UTC)"
    assert completed == f"extract, attempt 2: Completed, ran 5.5 s ({hms[3]} to {hms[8.5]} UTC)"
    assert re.fullmatch(rf"summarize, attempt 1: Running, running for 2\d\.\d s \(since {hms[9]} UTC\)", running)
    assert queued.startswith("publish, attempt 1: Queued, not started (created ")
    assert ">extract #1</text>" in timeline and '>Failed · <tspan data-duration="">2.0 s</tspan>' in timeline
    assert '>Queued · <tspan data-duration="">not started</tspan>' in timeline
    assert timeline.count("data-start=") == 1  # the running one, which the page's script grows
    assert "4 attempts: 1 failed, 1 completed, 1 running, 1 queued." in timeline
    assert 'fill="url(#tl-failed)"' in timeline and '<pattern id="tl-failed"' in timeline
    assert "data-live" in page


def test_the_timeline_fragment_is_the_pages_and_stays_in_its_organization(browser, org_a, org_b, make_flow):
    mine, theirs = make_flow(org_a, status=Status.RUNNING), make_flow(org_b, status=Status.RUNNING)
    attempt(theirs, "secret-task", 1, Status.RUNNING, timezone.now())
    attempt(mine, "extract", 1, Status.RUNNING, timezone.now())

    fragment = text(browser.get(f"/executions/{mine.id}/timeline/"))

    assert fragment.startswith('<div class="timeline" data-live>') and ">extract #1</text>" in fragment
    assert browser.get(f"/executions/{theirs.id}/timeline/").status_code == 404
    assert browser.get(f"/executions/{theirs.id}/").status_code == 404
    assert Client().get(f"/executions/{mine.id}/timeline/").status_code == 302


def test_a_finished_flows_timeline_ends_with_its_last_attempt_and_is_not_redrawn(browser, org_a, make_flow):
    flow = make_flow(org_a, status=Status.COMPLETED)
    start = datetime(2026, 1, 31, 23, 59, 50, tzinfo=UTC)
    attempt(flow, "extract", 1, Status.COMPLETED, start, start + timedelta(seconds=20))

    fragment = text(browser.get(f"/executions/{flow.id}/timeline/"))

    assert "data-live" not in fragment and "data-start=" not in fragment
    assert 'x="200.0" y="12" width="580.0"' in fragment  # the bar spans the whole time axis
    assert ">UTC 2026-01-31 to 2026-02-01</text>" in fragment and ">00:00:00</text>" in fragment


def test_a_timeline_draws_the_newest_attempts_and_says_when_there_are_more(browser, org_a, make_flow, monkeypatch):
    monkeypatch.setattr(views, "TIMELINE_ATTEMPTS", 2)
    flow = make_flow(org_a, status=Status.COMPLETED)
    start = timezone.now() - timedelta(minutes=5)
    for n in range(3):
        attempt(
            flow, "extract", n + 1, Status.COMPLETED, start + timedelta(seconds=n), start + timedelta(seconds=n + 1)
        )

    fragment = text(browser.get(f"/executions/{flow.id}/timeline/"))

    assert fragment.count('<g class="attempt ') == 2 and "extract #1<" not in fragment
    assert "Showing the newest 2 attempts; the API lists them all." in fragment


def test_a_flow_without_attempts_says_so(browser, org_a, make_flow):
    running, done = make_flow(org_a, status=Status.RUNNING), make_flow(org_a, status=Status.COMPLETED)

    assert "No task executions yet: each attempt appears here" in text(browser.get(f"/executions/{running.id}/"))
    assert "No task executions yet.</p>" in text(browser.get(f"/executions/{done.id}/timeline/"))


def test_names_are_escaped_in_pictures(browser, org_a, make_flow, make_output):
    flow = make_flow(org_a, status=Status.RUNNING)
    attempt(flow, "<script>alert(1)</script>", 1, Status.RUNNING, timezone.now())
    make_output(flow, task_name='"><script>', summary={"n": 1})

    pages = text(browser.get(f"/executions/{flow.id}/timeline/")) + text(browser.get("/executions/"))

    assert "<script>" not in pages and "&lt;script&gt;alert(1)" in pages


# --- Task outputs per hour --------------------------------------------------------------------------


def test_outputs_per_hour_stack_statuses_with_counts_and_a_legend(browser, org_a, org_b, flow_a, flow_b, make_output):
    now = timezone.now()
    earlier = now - timedelta(hours=2)
    for status in (Status.COMPLETED, Status.COMPLETED, Status.COMPLETED, Status.FAILED):
        output_at(make_output, flow_a, earlier, status=status)
    for _ in range(2):
        make_output(flow_a, status=Status.COMPLETED)
    output_at(make_output, flow_a, now - timedelta(hours=25), status=Status.FAILED)  # too old
    for _ in range(5):
        make_output(flow_b, status=Status.STALE)  # another organization's

    page = text(browser.get("/executions/"))

    chart = picture(page, "ph")
    assert chart.count('<g class="column"') == 2
    hour = earlier.astimezone(UTC)
    assert (
        f"{hour:%Y-%m-%d %H}:00 to {hour + timedelta(hours=1):%H}:00 UTC: 4 task outputs (3 completed, 1 failed)"
        in (titles(chart))
    )
    assert f"{hour:%Y-%m-%d %H}:00 to {hour + timedelta(hours=1):%H}:00 UTC: 1 failed" in titles(chart)
    assert ">Completed 5</text>" in chart and ">Failed 1</text>" in chart and "Stale" not in chart
    assert "6 task outputs in the last 24 hours: 5 completed, 1 failed. Busiest hour: 4." in chart
    assert 'fill="url(#ph-failed)"' in chart


def test_outputs_per_hour_say_when_there_are_none(browser, flow_a, flow_b, make_output):
    output_at(make_output, flow_a, timezone.now() - timedelta(days=2))
    make_output(flow_b)

    page = text(browser.get("/executions/"))

    assert "No task outputs in the last 24 hours." in page and "ph-title" not in page


# --- A summary value over time ----------------------------------------------------------------------


def test_the_summary_form_offers_recent_task_names_and_numeric_keys(browser, flow_a, flow_b, make_output):
    summary = {"pages": 3, "title": "x", "ok": True, "stats": {"rows": 5, "name": "n"}, "a.b": 1, "list": [1]}
    make_output(flow_a, task_name="extract", summary=summary)
    make_output(flow_a, task_name="classify", summary={"score": 0.5})
    make_output(flow_b, task_name="secret", summary={"hidden": 1})

    page = text(browser.get("/executions/", {"task": "extract"}))

    datalists = re.findall(r'<datalist id="([^"]+)">(.*?)</datalist>', page)
    assert datalists == [
        ("chart-tasks", '<option value="classify"><option value="extract">'),
        ("chart-keys", '<option value="pages"><option value="stats.rows">'),
    ]
    assert 'id="chart-key" name="key" list="chart-keys" value="pages"' in page  # the first key, chosen


def test_the_summary_chart_opens_on_the_newest_outputs_task_and_its_first_key(browser, flow_a, make_output):
    make_output(flow_a, task_name="extract", summary={"pages": 1})
    make_output(flow_a, task_name="classify", summary={"score": 0.25, "confidence": 0.5})

    page = text(browser.get("/executions/"))

    assert 'value="classify"' in page and 'list="chart-keys" value="confidence"' in page
    assert "summary.confidence per hour, last 24 hours (UTC)" in page


def test_the_summary_chart_draws_each_hours_average_and_range(browser, flow_a, flow_b, make_output):
    now = timezone.now()
    for pages in (1, 3):
        output_at(make_output, flow_a, now - timedelta(hours=3), summary={"pages": pages})
    output_at(make_output, flow_a, now - timedelta(hours=3), summary={"pages": "many"})  # not a number: skipped
    make_output(flow_a, summary={"pages": 10})
    output_at(make_output, flow_a, now - timedelta(days=3), summary={"pages": 100})
    make_output(flow_b, summary={"pages": 1000})  # another organization's
    make_output(flow_a, task_name="other", summary={"pages": 500})

    day = picture(text(browser.get("/executions/", {"task": "extract", "key": "summary.pages"})), "sc")
    week = picture(text(browser.get("/executions/", {"task": "extract", "key": "pages", "window": "7d"})), "sc")

    hour = (now - timedelta(hours=3)).astimezone(UTC)
    assert day.count('<g class="hour"') == 2 and day.count("<polyline points=") == 0  # two hours apart: no line
    assert (
        f"{hour:%Y-%m-%d %H}:00 to {hour + timedelta(hours=1):%H}:00 UTC: average 2 (min 1, max 3) over 2 outputs"
        in (titles(day))
    )
    assert "summary.pages over the last 24 hours: 3 outputs in 2 hours, values from 1 to 10" in day
    assert week.count('<g class="hour"') == 3 and "summary.pages per hour, last 7 days (UTC)" in week
    assert "values from 1 to 100," in week and "1,000" not in week and "500" not in week


def test_the_summary_chart_joins_consecutive_hours_with_a_line(browser, flow_a, make_output):
    now = timezone.now()
    for hours, pages in ((2, 4), (1, 6), (0, 5)):
        output_at(make_output, flow_a, now - timedelta(hours=hours), summary={"stats": {"rows": pages}})

    chart = picture(text(browser.get("/executions/", {"task": "extract", "key": "stats.rows"})), "sc")

    assert chart.count("<polyline points=") == 1 and chart.count('<circle cx="') == 4  # 3 points and the legend's


def test_the_summary_chart_says_when_there_is_nothing_to_draw(browser, org_a, flow_a, make_output):
    assert "No task outputs yet: their summary values" in text(browser.get("/executions/"))

    make_output(flow_a, summary={"title": "no numbers"})
    assert "No recent output of “extract” has a number in its summary" in text(browser.get("/executions/"))

    page = text(browser.get("/executions/", {"task": "extract", "key": "missing"}))
    assert "No outputs of “extract” with a number at summary.missing in the last 24 hours." in page


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"key": "stats..rows"}, "“stats..rows” is not a summary key: give its name, with dots between nested keys"),
        ({"key": "a\x00b"}, "Null characters are not allowed."),
        ({"window": "30d"}, "Select a valid choice. 30d is not one of the available choices."),
        ({"task": "t" * 201}, "Ensure this value has at most 200 characters (it has 201)."),
    ],
)
def test_bad_summary_chart_input_is_explained(browser, flow_a, make_output, query, message):
    make_output(flow_a, summary={"pages": 1})

    page = text(browser.get("/executions/", query))

    assert message in page and 'aria-invalid="true"' in page
    assert "Correct the form above to see the chart." in page and "sc-title" not in page
    assert "ph-title" in page  # the rest of the page is unharmed


# --- Under row-level security (PostgreSQL) ---------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_pictures_read_through_row_level_security(org_a, org_b, make_flow, make_output, runtime_role):
    """As the role the service runs as, scoped by the tenancy middleware: only the member's organization."""
    user = User.objects.create_user("alice")
    Membership.objects.create(user=user, organization=org_a)
    mine, theirs = make_flow(org_a, status=Status.RUNNING), make_flow(org_b, status=Status.RUNNING)
    for flow, pages in ((mine, 2), (theirs, 1000)):
        attempt(flow, "extract", 1, Status.RUNNING, timezone.now())
        make_output(flow, summary={"pages": pages})
    client = Client()
    client.force_login(user)

    with connection_as(runtime_role):
        page = text(client.get("/executions/", {"task": "extract", "key": "pages"}))
        fragment = text(client.get(f"/executions/{mine.id}/timeline/"))
        assert client.get(f"/executions/{theirs.id}/timeline/").status_code == 404

    assert "1 task output in the last 24 hours: 1 queued." in page
    assert "summary.pages over the last 24 hours: 1 output in 1 hour, values from 2 to 2" in page
    assert "1 attempt: 1 running." in fragment


# --- Drawing helpers ------------------------------------------------------------------------------


def test_value_axes_use_round_numbers():
    assert pictures._value_ticks(0, 7, integers=True) == [0, 2, 4, 6, 8]
    assert pictures._value_ticks(0, 1, integers=True) == [0, 1]
    assert pictures._value_ticks(0.2, 0.9) == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert pictures._value_ticks(5, 5) == [4, 4.5, 5, 5.5, 6]
    assert pictures._axis_number(2500) == "2.5k" and pictures._axis_number(-3_000_000) == "-3M"


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.25, "250 ms"), (2, "2.0 s"), (65, "1 min 05 s"), (3600 * 2 + 60 * 3, "2 h 03 min")]
)
def test_durations_read_as_people_say_them(seconds, text):
    assert pictures._duration(seconds) == text
