from django.apps import AppConfig


class TaskOutputsConfig(AppConfig):
    """Task outputs: the summarized, display-ready results that workers post when a task completes."""

    name = "task_outputs"
    verbose_name = "Task outputs"
