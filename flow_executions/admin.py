"""Admin for flow and task executions."""

from django.contrib import admin

from flow_executions.models import FlowExecution, TaskExecution


@admin.register(FlowExecution)
class FlowExecutionAdmin(admin.ModelAdmin):
    list_display = ["flow_name", "flow_version", "status", "organization", "created_at"]
    list_select_related = ["organization"]
    list_filter = ["status", "organization", "created_at"]
    search_fields = ["flow_name", "=id"]
    raw_id_fields = ["organization"]
    readonly_fields = ["id", "created_at", "updated_at"]
    show_full_result_count = False
    date_hierarchy = "created_at"


@admin.register(TaskExecution)
class TaskExecutionAdmin(admin.ModelAdmin):
    list_display = ["task_name", "attempt", "status", "flow_execution", "organization", "created_at"]
    list_select_related = ["organization", "flow_execution"]
    list_filter = ["status", "organization", "created_at"]
    search_fields = ["task_name", "=id", "=flow_execution__id"]
    raw_id_fields = ["organization", "flow_execution"]
    readonly_fields = ["id", "created_at", "updated_at"]
    show_full_result_count = False
