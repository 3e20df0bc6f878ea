"""Admin for task outputs."""

from django.contrib import admin

from task_outputs.models import TaskOutput


@admin.register(TaskOutput)
class TaskOutputAdmin(admin.ModelAdmin):
    list_display = ["task_name", "status", "flow_execution", "organization", "created_at"]
    list_select_related = ["organization", "flow_execution"]
    list_filter = ["status", "organization", "created_at"]
    search_fields = ["task_name", "=id", "=flow_execution__id"]
    raw_id_fields = ["organization", "flow_execution", "task_execution"]
    readonly_fields = ["id", "flow_version", "created_at", "updated_at"]
    show_full_result_count = False
