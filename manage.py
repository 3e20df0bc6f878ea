#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "superai_flow.settings")
    try:
        from django.core.management import execute_from_command_line
    except ImportError as exc:  # not the virtualenv's Python: say what to run instead of a traceback
        sys.exit(
            f"Cannot import Django ({exc}) with {sys.executable}: use .venv/bin/python manage.py ... "
            "(run `make run` or `make test` first if .venv does not exist yet: they create it)."
        )

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
