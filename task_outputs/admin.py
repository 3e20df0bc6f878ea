"""Admin for task outputs: find any output by task name, tag or id; mark stale or soft-delete it; the newest
outputs of a flow execution inline on its page."""

from __future__ import annotations

import uuid

from django.contrib import admin
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html

from flow_executions.admin import FlowExecutionAdmin
from flow_executions.lifecycle import Status
from superai_flow.admin_base import ExactTextFilter, OrganizationScopedAdmin, actor, pretty_json, run_action
from superai_flow.json_queries import JSONArrayContainsAll
from superai_flow.organizations.models import Organization
from task_outputs.models import TaskOutput
from task_outputs.services import task_output_delete, task_output_update

INLINE_OUTPUTS = 20


class RecentOutputsInline(admin.TabularInline):
    """The newest task outputs of the flow execution, read-only; the link after them lists them all."""

    model = TaskOutput
    fields = ["task_name", "status", "tags", "created_at", "link"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = f"task outputs (newest {INLINE_OUTPUTS})"

    def get_queryset(self, request):
        queryset = super().get_queryset(request).order_by("-created_at", "-id")
        # Formsets cannot slice; keep the newest N by primary key instead.
        newest = list(queryset.values_list("pk", flat=True)[:INLINE_OUTPUTS])
        return queryset.filter(pk__in=newest)

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="")
    def link(self, output: TaskOutput):
        return format_html('<a href="{}">open</a>', reverse("admin:task_outputs_taskoutput_change", args=[output.pk]))


# Flow executions know nothing of their outputs (the dependency runs from task_outputs to them), so
# the flow execution page gets its outputs inline from here.
FlowExecutionAdmin.inlines = [*FlowExecutionAdmin.inlines, RecentOutputsInline]


class TaskNameFilter(ExactTextFilter):
    title = "task name"
    parameter_name = "task_name"
    field_name = "task_name"


@admin.register(TaskOutput)
class TaskOutputAdmin(OrganizationScopedAdmin):
    list_display = ["task_name", "status", "flow_execution", "organization", "tag_list", "created_at"]
    list_select_related = ["organization", "flow_execution"]
    list_filter = ["status", "organization", "created_at", TaskNameFilter]
    search_fields = ["task_name"]
    search_help_text = "An id (of the output, its flow or task execution), an exact task name, or a tag."
    raw_id_fields = ["organization", "flow_execution", "task_execution"]
    fields = [
        "id",
        "organization",
        "flow_execution",
        "flow_version",
        "task_execution",
        "task_name",
        "status",
        "tags",
        "modified_by",
        "created_at",
        "updated_at",
        "summary_json",
        "output_json",
    ]
    readonly_fields = fields
    actions = ["mark_stale", "soft_delete"]

    def has_add_permission(self, request):
        return False  # outputs come from workers, through the API

    def has_delete_permission(self, request, obj=None):
        return False  # "soft delete" keeps the record for audit

    def get_search_results(self, request, queryset, search_term):
        """Exact, index-friendly matches instead of LIKE scans over millions of rows."""
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            pk = uuid.UUID(term)
        except ValueError:
            # Naming the organizations lets the (organization, task_name, ...) index find the task name
            # even for superusers; the GIN index finds the tag.
            organizations = list(Organization.objects.values_list("pk", flat=True))
            by_name = Q(organization__in=organizations, task_name=term)
            return queryset.filter(by_name | JSONArrayContainsAll("tags", [term])), False
        return queryset.filter(Q(pk=pk) | Q(flow_execution_id=pk) | Q(task_execution_id=pk)), False

    @admin.display(description="tags")
    def tag_list(self, output: TaskOutput) -> str:
        return ", ".join(output.tags)

    @admin.display(description="summary")
    def summary_json(self, output: TaskOutput):
        return pretty_json(output.summary)

    @admin.display(description="output")
    def output_json(self, output: TaskOutput):
        return pretty_json(output.output)

    @admin.action(description="Mark selected task outputs stale", permissions=["change"])
    def mark_stale(self, request, queryset):
        def change(output):
            task_output_update(task_output=output, actor=actor(request), status=Status.STALE)

        run_action(self, request, queryset, change, "Marked stale")

    @admin.action(description="Soft-delete selected task outputs", permissions=["change"])
    def soft_delete(self, request, queryset):
        run_action(
            self, request, queryset, lambda o: task_output_delete(task_output=o, actor=actor(request)), "Deleted"
        )
