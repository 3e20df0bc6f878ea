"""What the benchmarks share: a throwaway PostgreSQL database deployed like production (migrated by
the owning role, served by a runtime role under row-level security), and daphne processes on it.

The database lives on the shared server (SERVER) unless a benchmark gives `Deployment(server=...)`,
e.g. the address of a `PrivatePostgres` instance of its own (tests/e2e/servers.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.servers import PROJECT_DIR, PrivatePostgres, free_port  # noqa: F401 (PrivatePostgres: for benchmarks)

SERVER = "127.0.0.1:5432"  # the shared PostgreSQL; superuser "postgres", no password on loopback
RUNTIME_ROLE = "superai_flow_bench"


def psql(database: str, sql: str, *, capture: bool = False, server: str = SERVER) -> str:
    """Run `sql` in `database` on `server` ("host:port") as the superuser "postgres"."""
    host, port = server.rsplit(":", 1)
    run = subprocess.run(["psql", "-h", host, "-p", port, "-U", "postgres", "-d", database, "-qAtc", sql],
                         check=True, capture_output=capture, text=True)  # fmt: skip
    return run.stdout.strip() if capture else ""


class Deployment:
    """`with Deployment() as deployment:` a migrated database; `deployment.daphne()` serves it.

    `server` ("host:port") is the PostgreSQL server to deploy on (default: the shared one); `env`
    adds to the environment of the management commands and servers."""

    def __init__(self, *, server: str = SERVER, **env: str):
        self.server = server
        self.database = f"superai_flow_bench_{uuid.uuid4().hex[:8]}"
        owner_url = f"postgres://postgres@{server}/{self.database}"
        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{RUNTIME_ROLE}@{server}/{self.database}",
            "DATABASE_MIGRATION_URL": owner_url,
            "LOG_LEVEL": "WARNING",
            **env,
        }
        if "REDIS_URL" not in env:
            self.env.pop("REDIS_URL", None)
        self.servers: list[subprocess.Popen] = []

    def __enter__(self) -> Deployment:
        psql("postgres", f"CREATE DATABASE {self.database}", server=self.server)
        try:
            psql("postgres", f"DO $$ BEGIN CREATE ROLE {RUNTIME_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS; "
                             "EXCEPTION WHEN duplicate_object THEN NULL; END $$", server=self.server)  # fmt: skip
            print(f"Migrating {self.database} as the owner ...", file=sys.stderr)
            self.manage("migrate", "--database", "owner", "--noinput")
        except BaseException:
            self.__exit__()
            raise
        return self

    def psql(self, sql: str, *, capture: bool = False) -> str:
        """`sql` in this deployment's database, as the superuser (row-level security does not apply)."""
        return psql(self.database, sql, capture=capture, server=self.server)

    def manage(self, *args: str) -> str:
        """`manage.py ARGS` as the runtime role; the last line of its output."""
        run = subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=self.env,
                             capture_output=True, text=True)  # fmt: skip
        if run.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{run.stderr}")
        return run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""

    def tenant(self) -> tuple[str, str]:
        """A new organization's id and an API key for it, made with the management commands."""
        organization_id = self.manage("create_organization", f"bench-{uuid.uuid4().hex[:8]}")
        return organization_id, self.manage("create_api_key", organization_id, "--name", "bench")

    def daphne(self, **env: str) -> str:
        """A daphne process on the deployment; its base URL once it answers."""
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "superai_flow.asgi:application"],
            cwd=PROJECT_DIR, env={**self.env, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.servers.append(process)
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(base + "/", timeout=1)
                return base
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("daphne did not start")

    def __exit__(self, *exc) -> None:
        for process in self.servers:
            process.terminate()
            process.wait(timeout=30)
        psql("postgres", f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)", server=self.server)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def task_output_body(organization_id: str, flow_execution_id: str, *, text_bytes: int, tags: list[str]) -> dict:
    """What a worker posts: a two-key summary, an output of `text_bytes` characters, `tags`."""
    return {
        "organization_id": organization_id,
        "flow_execution_id": flow_execution_id,
        "task_name": "extract-text",
        "status": "completed",
        "summary": {"pages": 10, "word_count": 5000},
        "output": {"text": "x" * text_bytes},
        "tags": tags,
    }


def timed_gets(client: httpx.Client, path: str, count: int, *, warm_up: bool = True) -> list[float]:
    """`count` GETs of `path` one after another, after one to warm up (unless the caller made it): each one's
    milliseconds. Fails on a non-200."""
    if warm_up:
        client.get(path)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return times
