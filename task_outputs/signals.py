"""Signal handlers of task outputs: every saved output is announced to live watchers after commit."""

from __future__ import annotations

from task_outputs import live
from task_outputs.models import TaskOutput


def task_output_saved(sender, instance: TaskOutput, created: bool, raw: bool = False, **kwargs) -> None:
    if raw:
        return
    live.notify_saved(instance, created=created)
