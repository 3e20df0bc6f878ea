"""What the benchmarks share: a throwaway PostgreSQL database deployed like production (migrated by
the owning role, served by a runtime role under row-level security), and daphne processes on it.

The database lives on the shared server (SERVER) unless a benchmark gives `Deployment(server=...)`,
e.g. the address of a `PrivatePostgres` instance of its own."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.servers import PROJECT_DIR, free_port

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


def postgres_binary(name: str) -> str:
    """The absolute path of a PostgreSQL server program (initdb, pg_ctl): on PATH, else Debian's."""
    found = shutil.which(name)
    if found:
        return found
    for directory in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (directory / name).exists():
            return str(directory / name)
    raise RuntimeError(f"{name} not found: install PostgreSQL's server programs")


class PrivatePostgres:
    """`with PrivatePostgres(cpus="0") as pg:` a PostgreSQL instance of its own, for benchmarks that must
    count its CPU: initdb into a temporary directory (trust authentication, superuser "postgres", fsync
    on), listening on 127.0.0.1 on a free port with its unix socket in that directory, started with
    `pg_ctl` pinned to `cpus` (None: not pinned). On exit (also after an error or Ctrl-C) it is stopped
    and its directory deleted. PostgreSQL refuses to run as root: as root it runs as the OS user
    "postgres", which then owns the directory. `Deployment(server=pg.server)` deploys on it."""

    def __init__(self, *, cpus: str | None = "0", settings: dict[str, str] | None = None):
        self.port = free_port()
        self.server = f"127.0.0.1:{self.port}"
        self.cpus = cpus
        self.settings = settings or {}
        self.dir: Path | None = None
        self.postmaster_pid: int | None = None

    @property
    def data(self) -> Path:
        assert self.dir is not None
        return self.dir / "data"

    def _command(self, *command: str) -> list[str]:
        """`command` as the user that owns the instance (the OS user "postgres" when we are root)."""
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *command]
        return list(command)

    def _run(self, command: list[str], timeout: float = 120) -> None:
        run = subprocess.run(command, cwd=self.dir, capture_output=True, text=True, timeout=timeout,
                             start_new_session=True)  # fmt: skip
        if run.returncode:
            log = self.dir / "postgres.log" if self.dir else None
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{run.stdout}{run.stderr}{tail}")

    def __enter__(self) -> PrivatePostgres:
        self.dir = Path(tempfile.mkdtemp(prefix="superai-bench-pg-"))
        try:
            if os.geteuid() == 0:
                owner = pwd.getpwnam("postgres")
                os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self._run(self._command(postgres_binary("initdb"), "-D", str(self.data), "-U", "postgres",
                                    "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"))  # fmt: skip
            settings = {
                "listen_addresses": "127.0.0.1",
                "port": str(self.port),
                "unix_socket_directories": str(self.dir),
                **self.settings,
            }
            options = " ".join(f"-c {name}={value}" for name, value in settings.items())
            pg_ctl = [postgres_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "postgres.log")]
            pin = ["taskset", "-c", self.cpus] if self.cpus is not None else []
            self._run([*pin, *self._command(*pg_ctl, "-o", options, "-w", "-t", "60", "start")])
            self.postmaster_pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except BaseException:
            self.__exit__()
            raise
        return self

    def processes(self) -> list[int]:
        """The pids of the instance: the postmaster and its children (backends, background workers)."""
        if self.postmaster_pid is None:
            return []
        children = [pid for pid, ppid in process_parents().items() if ppid == self.postmaster_pid]
        return [self.postmaster_pid, *children]

    def __exit__(self, *exc) -> None:
        if self.dir is None:
            return
        if (self.data / "postmaster.pid").exists():
            try:
                stop = [postgres_binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop"]
                subprocess.run(self._command(*stop), cwd=self.dir, capture_output=True, timeout=60,
                               start_new_session=True)  # fmt: skip
            except subprocess.TimeoutExpired:
                pass
            if self.postmaster_pid is not None and (self.data / "postmaster.pid").exists():
                try:
                    os.kill(self.postmaster_pid, signal.SIGQUIT)  # immediate shutdown
                    time.sleep(2)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


def process_parents() -> dict[int, int]:
    """pid -> parent pid of every process on the machine (from /proc/<pid>/stat)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return parents


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
