"""Real daphne processes for end-to-end tests, pointed at the test database."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
from django.db import connection

PROJECT_DIR = Path(__file__).resolve().parents[2]
# Set by tests/e2e/conftest.py on PostgreSQL: servers connect as the production-like runtime role.
RUNTIME_ROLE: str | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shared_database_url() -> str:
    """DATABASE_URL of the database pytest-django created, for servers to share with the tests; on
    PostgreSQL as the runtime role, so that everything end to end runs under row-level security."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    auth = quote(RUNTIME_ROLE or settings["USER"] or "", safe="")
    if settings["PASSWORD"] and not RUNTIME_ROLE:
        auth += ":" + quote(settings["PASSWORD"], safe="")
    return f"postgres://{auth}@{settings['HOST'] or 'localhost'}:{settings['PORT'] or 5432}/{settings['NAME']}"


class DaphneServer:
    """`daphne superai_flow.asgi:application` on a free port; its output goes to a log file."""

    def __init__(self, *, port: int | None = None, **env: str):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "DATABASE_URL": shared_database_url(), **env}
        handle, name = tempfile.mkstemp(prefix="daphne-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)
        self.process: subprocess.Popen | None = None

    def start(self, ready_path: str = "/", timeout: float = 30) -> DaphneServer:
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
        log = os.open(self.log_path, os.O_WRONLY | os.O_APPEND)
        try:
            self.process = subprocess.Popen(
                [*command, "superai_flow.asgi:application"],
                cwd=PROJECT_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            os.close(log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited with {self.process.returncode}:\n{self.output()}")
            try:
                httpx.get(self.url + ready_path, timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"daphne did not answer within {timeout} s:\n{self.output()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> DaphneServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class RedisServer:
    """A private redis-server on a free port, for tests that stop and restart Redis."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="redis-")
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*command, "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


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
    count its CPU and tests that stop and restart it: initdb into a temporary directory (trust
    authentication, superuser "postgres", fsync on), listening on 127.0.0.1 on a free port with its unix
    socket in that directory, started with `pg_ctl` pinned to `cpus` (None: not pinned). On exit (also
    after an error or Ctrl-C) it is stopped and its directory deleted. PostgreSQL refuses to run as root:
    as root it runs as the OS user "postgres", which then owns the directory. `Deployment(server=pg.server)`
    (bench/common.py) deploys on it."""

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
        self.dir = Path(tempfile.mkdtemp(prefix="superai-pg-"))
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
            self._options = " ".join(f"-c {name}={value}" for name, value in settings.items())
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def start(self) -> None:
        """Start the instance (again, after `stop`)."""
        pg_ctl = [postgres_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "postgres.log")]
        pin = ["taskset", "-c", self.cpus] if self.cpus is not None else []
        self._run([*pin, *self._command(*pg_ctl, "-o", self._options, "-w", "-t", "60", "start")])
        self.postmaster_pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        """Stop the instance as an outage would: `pg_ctl stop -m fast` ends every session at once."""
        self._run(self._command(postgres_binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"))
        self.postmaster_pid = None

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


def children(pid: int) -> list[int]:
    """The pids whose parent is `pid`."""
    return sorted(child for child, parent in process_parents().items() if parent == pid)


class MakeServe:
    """`make serve PORT=<free> WEB_CONCURRENCY=<processes>` with `env`, as users run it; its output goes to
    `log_path`. For tests (`serve_test_database`) and the soak (bench/soak.py)."""

    def __init__(self, env: dict[str, str], log_path: Path, processes: int = 2):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes = processes
        self.log_path = log_path
        self.log = log_path.open("w")
        self.make = subprocess.Popen(
            ["make", "-s", "serve", f"PORT={self.port}", f"WEB_CONCURRENCY={processes}"],
            cwd=PROJECT_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def supervisord(self) -> int | None:
        found = children(self.make.pid)  # make's recipe execs supervisord
        return found[0] if len(found) == 1 else None

    def daphnes(self) -> list[int]:
        supervisord = self.supervisord()
        return children(supervisord) if supervisord else []

    def wait_until_answering(self, timeout: float = 60) -> None:
        """Until /readyz answers 200 and every process runs."""
        deadline = time.monotonic() + timeout
        while True:
            if self.make.poll() is not None:
                raise RuntimeError(f"make serve exited with {self.make.returncode}:\n{self.output()[-3000:]}")
            try:
                if (
                    httpx.get(self.url + "/readyz", timeout=5).status_code == 200
                    and len(self.daphnes()) == self.processes
                ):
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"make serve did not answer within {timeout} s:\n{self.output()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM to supervisord, as a user would (it stops the daphnes); then SIGKILL for whatever is left
        (supervisord's children run in process groups of their own)."""
        leftovers = self.daphnes()
        if self.make.poll() is None:
            supervisord = self.supervisord()
            if supervisord is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(supervisord, signal.SIGTERM)
            try:
                self.make.wait(timeout=40)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.make.pid, signal.SIGKILL)
                self.make.wait()
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.log.close()


def serve_test_database(tmp_path: Path, **env: str) -> MakeServe:
    """`make serve` with two processes on the test database and the suite's Redis (or `env`'s)."""
    env = {**os.environ, "DATABASE_URL": shared_database_url(), "SUPERAI_FLOW_VAR_DIR": str(tmp_path), **env}
    return MakeServe(env, tmp_path / "serve.log")
