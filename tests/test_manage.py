"""manage.py run with a Python that lacks the project's dependencies says what to do instead."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MANAGE_PY = Path(__file__).resolve().parent.parent / "manage.py"


def test_manage_py_without_django_prints_one_line_pointing_at_the_virtualenv():
    # -I -S: no site-packages (the virtualenv's included), no PYTHON* variables: a Python without Django.
    python = [sys.executable, "-I", "-S"]
    assert subprocess.run([*python, "-c", "import django"], capture_output=True).returncode != 0

    run = subprocess.run(
        [*python, str(MANAGE_PY), "--help"], cwd=MANAGE_PY.parent, capture_output=True, text=True, timeout=60
    )

    assert run.returncode == 1
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert ".venv/bin/python manage.py" in run.stderr and "make run" in run.stderr, run.stderr
