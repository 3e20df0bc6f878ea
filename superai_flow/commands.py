"""A base for management commands that work across organizations."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from superai_flow.tenancy import system_scope


class SystemCommand(BaseCommand):
    """Runs in one transaction that sees every organization: row-level security's explicit, logged bypass
    for system jobs (docs/security.md). A failing command changes nothing."""

    def execute(self, *args, **options):
        name = type(self).__module__.rsplit(".", 1)[-1]
        with system_scope(f"manage.py {name}"):
            return super().execute(*args, **options)
