"""Admin for task outputs: find any output by task name, tag or id; mark stale or soft-delete it."""

from __future__ import annotations

import uuid

from django.contrib import admin
from django.db.models import Q

from flow_executions.lifecycle import Status
from superai_flow.admin_base import ExactTextFilter, OrganizationScopedAdmin, actor, pretty_json, run_action
from superai_flow.json_queries import JSONArrayContainsAll
from superai_flow.organizations.models import Organization
from task_outputs.models import TaskOutput
from task_outputs.services import task_output_delete, task_output_update


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
