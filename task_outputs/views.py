"""Pages: execution history and one flow execution, live, for signed-in members of organizations, with their
pictures (task_outputs.pictures)."""

from __future__ import annotations

import json
from datetime import datetime

from django import forms
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution
from flow_executions.selectors import task_output_counts, visible_flow_executions, visible_task_executions
from superai_flow.json_queries import json_path
from superai_flow.organizations.models import Organization
from superai_flow.organizations.selectors import organization_ids_for_user, organizations_for_user
from task_outputs import live, pictures
from task_outputs.models import TaskOutput
from task_outputs.selectors import visible_task_outputs

EXECUTIONS_PER_PAGE = 25
RECENT_OUTPUTS = 15
# A flow execution page shows at most this many outputs (the newest), and says so.
OUTPUTS_PER_FLOW = 500
# The timeline draws at most this many attempts (the newest), and says so.
TIMELINE_ATTEMPTS = 100
# The summary chart's periods: hours back from now.
CHART_WINDOWS = {"24h": 24, "7d": 24 * 7}


# The session key under which the pages remember the organization last shown (until sign-out).
ORGANIZATION_SESSION_KEY = "organization_id"


def _current_organization(request: HttpRequest, organizations: list[Organization]) -> Organization | None:
    """The organization the pages show: `?org=`, else the one remembered in the session, else a default.

    Only `organizations` (what the user may see now) are candidates: a chosen or remembered id outside
    them, or of an organization that no longer exists, is ignored. Whatever is shown is remembered.
    """
    allowed = {str(org.id): org for org in organizations}
    chosen = (
        allowed.get(request.GET.get("org", ""))
        or allowed.get(request.session.get(ORGANIZATION_SESSION_KEY, ""))
        or _default_organization(request.user, organizations)
    )
    if chosen is not None and request.session.get(ORGANIZATION_SESSION_KEY) != str(chosen.id):
        request.session[ORGANIZATION_SESSION_KEY] = str(chosen.id)
    return chosen


def _default_organization(user: AbstractBaseUser, organizations: list[Organization]) -> Organization | None:
    """Where a user starts when nothing is remembered: of their memberships, the one with the newest
    flow execution (else the first by name); for a superuser who is a member of none, the organization
    with the newest flow execution; else the first by name."""
    if not organizations:
        return None
    if user.is_superuser:
        member_ids = organization_ids_for_user(user)
        members = [org for org in organizations if org.id in member_ids]
    else:
        members = organizations  # a user who is not a superuser sees only their memberships
    candidates = members or organizations
    return _with_newest_flow_execution(candidates) or candidates[0]


def _with_newest_flow_execution(organizations: list[Organization]) -> Organization | None:
    """Which of `organizations` has the most recent visible flow execution (None if none has any)."""
    newest = (
        visible_flow_executions()
        .filter(organization=OuterRef("pk"))
        .order_by("-created_at", "-id")
        .values("created_at")[:1]
    )
    busiest = (
        Organization.objects.filter(pk__in=[org.id for org in organizations])
        .annotate(newest=Subquery(newest))
        .filter(newest__isnull=False)
        .order_by("-newest", "name")
        .values_list("pk", flat=True)
        .first()
    )
    return next((org for org in organizations if org.id == busiest), None)


def _output_counts(flow_ids: list) -> dict:
    rows = (
        TaskOutput.objects.filter(flow_execution_id__in=flow_ids)
        .exclude(status=Status.DELETED)
        .values_list("flow_execution_id")
        .annotate(count=Count("pk"))
        .order_by()
    )
    return dict(rows)


@login_required
@require_GET
def executions(request: HttpRequest) -> HttpResponse:
    """Flow executions of the current organization, newest first, with a live panel of new outputs."""
    organizations = list(organizations_for_user(request.user))
    organization = _current_organization(request, organizations)
    context = {"organizations": organizations, "organization": organization, "statuses": Status.values}
    if organization is None:
        return render(request, "task_outputs/executions.html", context)
    cursor = live.encode_cursor(live.current_horizon())  # before the queries: resuming from it misses nothing
    status = request.GET.get("status", "")
    flow_name = request.GET.get("flow_name", "")
    flows = visible_flow_executions().filter(organization=organization)
    if status in Status.values:
        flows = flows.filter(status=status)
    if flow_name:
        flows = flows.filter(flow_name=flow_name)
    page = Paginator(flows.order_by("-created_at", "-id"), EXECUTIONS_PER_PAGE).get_page(request.GET.get("page"))
    counts = _output_counts([flow.id for flow in page])
    for flow in page:
        flow.output_count = counts.get(flow.id, 0)
    outputs = visible_task_outputs().filter(organization=organization)
    recent = outputs.select_related("flow_execution").order_by("-created_at", "-id")[:RECENT_OUTPUTS]
    now = timezone.now()
    context.update(page=page, recent=recent, cursor=cursor, status=status, flow_name=flow_name)
    context.update(per_hour=pictures.outputs_per_hour_svg(outputs, now=now), **_summary_chart(request, outputs, now))
    return render(request, "task_outputs/executions.html", context)


class SummaryChartForm(forms.Form):
    """What the summary chart shows: a task's numeric summary key (dotted for nested objects) over a period."""

    task = forms.CharField(max_length=200, required=False)
    key = forms.CharField(max_length=500, required=False)
    window = forms.ChoiceField(choices=[("24h", "Last 24 hours"), ("7d", "Last 7 days")], required=False)

    def clean_key(self) -> str:
        key = self.cleaned_data["key"].removeprefix("summary.")
        if key and json_path(key) is None:
            raise forms.ValidationError(
                f"“{key}” is not a summary key: give its name, with dots between nested keys (stats.rows)."
            )
        return key


def _summary_chart(request: HttpRequest, outputs: QuerySet[TaskOutput], now: datetime) -> dict:
    """The chart form and, for valid input, its choices and the chart. Without a choice it shows the newest
    output's task and that task's first numeric key, so that the page opens on a picture."""
    form = SummaryChartForm(request.GET, auto_id="chart-%s")
    if not form.is_valid():
        return {"chart_form": form}
    task_names, task, keys = pictures.recent_choices(outputs, form.cleaned_data["task"])
    key = form.cleaned_data["key"] or next(iter(keys), "")
    window = form.cleaned_data["window"] or "24h"
    chart = None
    if task and key:
        chart = pictures.summary_svg(
            outputs.filter(task_name=task), path=key.split("."), hours=CHART_WINDOWS[window], now=now
        )
    return {
        "chart_form": form,
        "chart_task": task,
        "chart_key": key,
        "chart_window": window,
        "chart_task_names": task_names,
        "chart_keys": keys,
        "chart": chart,
    }


def _visible_flow(request: HttpRequest, pk) -> FlowExecution:
    return get_object_or_404(
        visible_flow_executions().filter(organization__in=organizations_for_user(request.user)), pk=pk
    )


@login_required
@require_GET
def execution_detail(request: HttpRequest, pk) -> HttpResponse:
    """One flow execution: its outputs in order, appended live as they arrive."""
    flow = _visible_flow(request, pk)
    cursor = live.encode_cursor(live.current_horizon())
    counts = task_output_counts(flow)
    newest = visible_task_outputs().filter(flow_execution=flow).order_by("-created_at", "-id")[:OUTPUTS_PER_FLOW]
    outputs = list(reversed(newest))
    context = {
        "flow": flow,
        "outputs": outputs,
        "total": sum(counts.values()),
        "cursor": cursor,
        "organizations": list(organizations_for_user(request.user)),
        "organization": flow.organization,
        **_timeline(flow),
    }
    return render(request, "task_outputs/execution_detail.html", context)


@login_required
@require_GET
def execution_timeline(request: HttpRequest, pk) -> HttpResponse:
    """The flow page's timeline, which its script loads again on every live message and while the flow runs:
    attempts send no live messages of their own, and the feed's message types stay as they are."""
    return render(request, "task_outputs/_timeline.html", _timeline(_visible_flow(request, pk)))


def _timeline(flow: FlowExecution) -> dict:
    """The newest TIMELINE_ATTEMPTS attempts of `flow`, drawn: one indexed read, however many it has."""
    attempts = list(
        visible_task_executions()
        .filter(organization_id=flow.organization_id, flow_execution=flow)
        .order_by("-created_at", "-id")[: TIMELINE_ATTEMPTS + 1]
    )
    ongoing = flow.status in (Status.QUEUED, Status.RUNNING, Status.IN_PROGRESS)
    timeline = (
        pictures.timeline_svg(attempts[:TIMELINE_ATTEMPTS], now=timezone.now(), live=ongoing) if attempts else None
    )
    return {
        "timeline": timeline,
        "timeline_cut": len(attempts) > TIMELINE_ATTEMPTS,
        "timeline_live": ongoing,
        "timeline_limit": TIMELINE_ATTEMPTS,
    }


def _visible_output(request: HttpRequest, pk) -> TaskOutput:
    outputs = visible_task_outputs().filter(organization__in=organizations_for_user(request.user))
    return get_object_or_404(outputs, pk=pk)


@login_required
@require_GET
def output_card(request: HttpRequest, pk) -> HttpResponse:
    """One output's card, as the flow page shows it: what its live script inserts."""
    return render(request, "task_outputs/_output_card.html", {"output": _visible_output(request, pk)})


@login_required
@require_GET
def output_json(request: HttpRequest, pk) -> HttpResponse:
    """The whole `output` of a task output, pretty-printed (the page shows only its beginning)."""
    output = _visible_output(request, pk)
    return HttpResponse(json.dumps(output.output, indent=2, ensure_ascii=False), content_type="application/json")
