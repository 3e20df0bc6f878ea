from django.apps import AppConfig
from django.db.models.signals import post_save


class TaskOutputsConfig(AppConfig):
    """Task outputs: the summarized, display-ready results that workers post when a task completes."""

    name = "task_outputs"
    verbose_name = "Task outputs"

    def ready(self) -> None:
        from task_outputs.models import TaskOutput
        from task_outputs.signals import task_output_saved

        post_save.connect(task_output_saved, sender=TaskOutput, dispatch_uid="task_output_saved")
