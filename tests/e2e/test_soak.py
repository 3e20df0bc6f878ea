"""The soak (bench/soak.py), shortened for CI: 1,500 creates from 8 retrying workers and 10 reconnecting
WebSocket clients against `make serve` with 2 processes; the same code and the same checks as the full run
(docs/operations.md, "Soak"). It deploys on a PostgreSQL of its own (as tests/e2e/test_faults.py does) and
uses the suite's Redis (REDIS_URL) under a channel prefix of its own; it does not touch the test database."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from django.conf import settings

from tests.e2e.servers import PROJECT_DIR

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def load_soak():
    """bench/soak.py as a module (bench/ is not a package: its scripts import `common` from their directory)."""
    bench = str(PROJECT_DIR / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    spec = importlib.util.spec_from_file_location("bench_soak", PROJECT_DIR / "bench" / "soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_a_short_soak_loses_nothing_and_keeps_its_memory():
    soak = load_soak()
    config = soak.Config(creates=1500, workers=8, websockets=10, processes=2, redis_url=settings.REDIS_URL, seed=1)

    report = soak.run(config)

    summary = soak.markdown(report)
    assert report["creates"]["acknowledged"] == 1500, summary
    assert report["creates"]["rejected_count"] == 0, report["creates"]["rejected"]
    assert report["database"]["lost"] == 0 and report["database"]["extra"] == 0, report["database"]
    assert report["database"]["stored"] == report["database"]["distinct"] == 1500, report["database"]
    assert [client["missing"] for client in report["websockets"]["per_client"]] == [0] * 10, summary
    assert report["websockets"]["connections"] > 10, summary  # the clients did reconnect and resume
    assert all(process["within_tolerance"] for process in report["processes"]), report["processes"]
    assert report["checks"]["no daphne process restarted"], report["server_log_tail"]
    assert [process["malloc_arena_max"] for process in report["processes"]] == ["2", "2"], report["processes"]
    # How the clients fared with their resumes: every one reached `resumed` at least once (the last resume).
    assert report["websockets"]["resume_to_resumed"]["p50_s"] is not None, summary
    assert report["websockets"]["sessions_before_resumed"] < report["websockets"]["connections"], summary
    assert all(client["resume_to_resumed"]["max_s"] is not None for client in report["websockets"]["per_client"])
    assert report["passed"], (report["checks"], report["server_log_tail"])
