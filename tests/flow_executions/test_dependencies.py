"""Flow executions do not depend on task outputs: the dependency runs from task_outputs to flow_executions."""

from __future__ import annotations

import ast
from pathlib import Path

import flow_executions

APP_DIR = Path(flow_executions.__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_flow_executions_never_imports_task_outputs():
    offenders = {
        str(path.relative_to(APP_DIR.parent)): sorted(module for module in imported_modules(path)
                                                      if module.split(".")[0] == "task_outputs")
        for path in APP_DIR.rglob("*.py")
    }  # fmt: skip

    assert {path: modules for path, modules in offenders.items() if modules} == {}


def test_the_flow_execution_admin_still_shows_its_outputs_inline():
    from django.contrib import admin

    from flow_executions.models import FlowExecution
    from task_outputs.models import TaskOutput

    assert TaskOutput in [inline.model for inline in admin.site.get_model_admin(FlowExecution).inlines]
