"""Admin for flow and task executions: browse, mark stale or soft-delete (task_outputs adds outputs inline)."""

from __future__ import annotations

import uuid

from django.contrib import admin
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution, TaskExecution
from flow_executions.services import flow_execution_delete, flow_execution_update, task_execution_update
from superai_flow.admin_base import ExactTextFilter, OrganizationScopedAdmin, actor, pretty_json, run_action


class FlowNameFilter(ExactTextFilter):
    title = "flow name"
    parameter_name = "flow_name"
    field_name = "flow_name"


class TaskNameFilter(ExactTextFilter):
    title = "task name"
    parameter_name = "task_name"
    field_name = "task_name"


def _uuid_search(queryset, search_term: str, text_field: str):
    term = search_term.strip()
    if not term:
        return queryset, False
    try:
        return queryset.filter(pk=uuid.UUID(term)), False
    except ValueError:
        return queryset.filter(Q(**{text_field: term})), False


@admin.register(FlowExecution)
class FlowExecutionAdmin(OrganizationScopedAdmin):
    list_display = ["flow_name", "flow_version", "status", "organization", "created_at", "all_outputs"]
    list_select_related = ["organization"]
    list_filter = ["status", "organization", "created_at", FlowNameFilter]
    search_fields = ["flow_name"]
    search_help_text = "A flow execution id or an exact flow name."
    raw_id_fields = ["organization"]
    fields = ["id", "organization", "flow_name", "flow_version", "status", "modified_by", "started_at",
              "completed_at", "created_at", "updated_at", "input_json"]  # fmt: skip
    readonly_fields = fields
    # task_outputs adds its newest outputs inline (task_outputs/admin.py): this app does not know that one.
    actions = ["mark_stale", "soft_delete"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_search_results(self, request, queryset, search_term):
        return _uuid_search(queryset, search_term, "flow_name")

    @admin.display(description="input")
    def input_json(self, flow: FlowExecution):
        return pretty_json(flow.input)

    @admin.display(description="task outputs")
    def all_outputs(self, flow: FlowExecution):
        url = reverse("admin:task_outputs_taskoutput_changelist")
        return format_html('<a href="{}?q={}">list</a>', url, flow.pk)

    @admin.action(description="Mark selected flow executions stale", permissions=["change"])
    def mark_stale(self, request, queryset):
        def change(flow):
            flow_execution_update(flow_execution=flow, actor=actor(request), status=Status.STALE)

        run_action(self, request, queryset, change, "Marked stale")

    @admin.action(description="Soft-delete selected flow executions", permissions=["change"])
    def soft_delete(self, request, queryset):
        def change(flow):
            flow_execution_delete(flow_execution=flow, actor=actor(request))

        run_action(self, request, queryset, change, "Deleted")


@admin.register(TaskExecution)
class TaskExecutionAdmin(OrganizationScopedAdmin):
    list_display = ["task_name", "attempt", "status", "flow_execution", "organization", "created_at"]
    list_select_related = ["organization", "flow_execution"]
    list_filter = ["status", "organization", "created_at", TaskNameFilter]
    search_fields = ["task_name"]
    search_help_text = "A task execution id or an exact task name."
    raw_id_fields = ["organization", "flow_execution"]
    fields = ["id", "organization", "flow_execution", "task_name", "status", "attempt", "retries", "started_at",
              "finished_at", "modified_by", "created_at", "updated_at", "input_json", "output_json",
              "error_json"]  # fmt: skip
    readonly_fields = fields
    actions = ["soft_delete"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_search_results(self, request, queryset, search_term):
        return _uuid_search(queryset, search_term, "task_name")

    @admin.display(description="input")
    def input_json(self, task: TaskExecution):
        return pretty_json(task.input)

    @admin.display(description="output")
    def output_json(self, task: TaskExecution):
        return pretty_json(task.output)

    @admin.display(description="error")
    def error_json(self, task: TaskExecution):
        return pretty_json(task.error)

    @admin.action(description="Soft-delete selected task executions", permissions=["change"])
    def soft_delete(self, request, queryset):
        def change(task):
            task_execution_update(task_execution=task, actor=actor(request), status=Status.DELETED)

        run_action(self, request, queryset, change, "Deleted")
