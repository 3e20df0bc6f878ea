"""Signal handlers of task outputs: every saved output is announced to live watchers after commit,
and every created one is counted (superai_flow.metrics) when its transaction commits."""

from __future__ import annotations

from django.db import transaction

from superai_flow.metrics import TASK_OUTPUTS_CREATED
from task_outputs import live
from task_outputs.models import TaskOutput


def task_output_saved(sender, instance: TaskOutput, created: bool, raw: bool = False, **kwargs) -> None:
    if raw:
        return
    live.notify_saved(instance, created=created)
    if created:
        transaction.on_commit(TASK_OUTPUTS_CREATED.inc, using=kwargs.get("using"))
