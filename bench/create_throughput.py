"""Throughput of POST /api/v1/task-outputs: requests/s, latency and server CPU per request under load.

Everything runs on this machine, on loopback, and is deleted at the end (also after an error or Ctrl-C):

- PostgreSQL: a private instance (tests/e2e/servers.py `PrivatePostgres`: initdb into a temporary directory,
  its own port, trust authentication, fsync on), pinned to CPU 0, deployed like production (`Deployment`:
  migrated by the owner, served by a runtime role under row-level security).
- Redis: a private redis-server on a free port, pinned to CPU 0 (channel layer and cache, as in
  production with REDIS_URL), so that its CPU is counted and no one else's traffic is.
- daphne with DJANGO_SETTINGS_MODULE=bench_settings (the project's settings and URLs plus the two trivial
  baseline endpoints of bench_urls.py), rate limit off (API_RATE_LIMIT=""), pinned to CPU 0. With
  --processes N > 1, N daphne processes share one listening socket that this script binds and hands
  them (`daphne --fd`, as Channels' docs do with supervisor's fcgi-program); they are not pinned and use
  both cores, the client's too. The kernel does not balance keep-alive connections over such a socket
  (whichever process waits in accept() takes them): the output shows how busy each process was.
- The load client is this process, pinned to CPU 1: a minimal asyncio HTTP/1.1 keep-alive client
  (pre-encoded requests; httpx would be the bottleneck). Concurrency C is C connections, each sending
  its next request as soon as the previous answer arrived.

For each concurrency and each target -- `create` (the real endpoint, ~1 KB body, Bearer key), and the
baselines `trivial-django` (a bare Django view) and `trivial-drf` (a DRF APIView without authentication,
permissions or throttling), both answering 201 with a small JSON body, same request bytes, same daphne --
it runs a warm-up, then a timed phase, and reports requests/s, latency percentiles of the answered
requests, errors (non-2xx or transport) and the server's CPU per request: utime+stime from /proc of
every daphne process, every process of the PostgreSQL instance (with the CPU of backends that exited,
through the postmaster's cutime/cstime) and redis-server, before and after the timed phase. Before each
timed phase it waits (up to QUIET_WAIT_SECONDS) until the rest of the machine uses under QUIET_CORES;
the results say when it did not.

Then: one more create phase at --websocket-concurrency with a WebSocket watcher of the flow execution
(the time from each 201 to its `task_output.created` message, and how long the backlog took to drain
after the last 201); a check that the rows stored equal the 201s received; and pgbench inserting the
same row into task_outputs_taskoutput (all its indexes in place; as the superuser, so without
row-level security) at 1 and 8 clients: the database's own limit for this row on one core.

The trivial-django row at concurrency 32 also bounds what this client can measure on its core (its
own CPU use is in each row of the JSON as client_cores).

Progress goes to stderr; at the end a JSON document, then markdown tables, go to stdout.

    python bench/create_throughput.py                                  # C = 1 8 32, 10 s each
    python bench/create_throughput.py --seconds 3 --concurrency 1 8    # a quick look
    python bench/create_throughput.py --processes 2                    # two daphne processes, one socket
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from common import PROJECT_DIR, Deployment, PrivatePostgres, free_port, percentile, task_output_body

BENCH_DIR = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CPU = 0
CLIENT_CPU = 1
TARGETS = {
    "create": "/api/v1/task-outputs",
    "trivial-django": "/bench/trivial/django",
    "trivial-drf": "/bench/trivial/drf",
}
CLIENT_CEILING_CONCURRENCY = 32
QUIET_CORES = 0.3  # the rest of the machine counts as quiet under this many busy cores
QUIET_WAIT_SECONDS = 15  # how long to wait for it before each timed phase
STOP_GRACE_SECONDS = 30  # after a phase, how long requests still in flight may take before they are cancelled
DRAIN_SECONDS = 30  # after the last 201, how long the watcher may still be owed messages
START_SECONDS = 60  # how long servers may take to start


# --- CPU accounting (/proc) -----------------------------------------------------------------------


def cpu_ticks(pid: int, *, children: bool = False, main_thread: bool = False) -> int:
    """utime + stime of `pid` (all its threads), in clock ticks; with `children`, plus those of its
    children that exited and were waited for; with `main_thread`, of its main thread only (daphne's
    event loop). 0 when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/task/{pid}/stat" if main_thread else f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is field 3 (state) of proc(5)
    ticks = int(fields[11]) + int(fields[12])
    return ticks + int(fields[13]) + int(fields[14]) if children else ticks


def machine_busy_ticks() -> int:
    """Busy time of all CPUs since boot (user, nice, system, irq, softirq, steal), in clock ticks."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return user + nice + system + irq + softirq + steal


@dataclass
class Processes:
    """The processes whose CPU is counted: the servers' and this client's."""

    postgres: PrivatePostgres
    redis_pid: int
    daphne_pids: list[int]

    def cpu(self) -> dict[str, int]:
        return {
            "daphne": sum(cpu_ticks(pid) for pid in self.daphne_pids),
            "daphne_loop": sum(cpu_ticks(pid, main_thread=True) for pid in self.daphne_pids),
            "postgres": sum(cpu_ticks(pid, children=True) for pid in self.postgres.processes()),
            "redis": cpu_ticks(self.redis_pid),
            "client": cpu_ticks(os.getpid()),
        }

    def total(self) -> int:
        """Every counted process's CPU, each thread once."""
        return sum(ticks for name, ticks in self.cpu().items() if name != "daphne_loop")

    def daphne_each(self) -> list[int]:
        return [cpu_ticks(pid) for pid in self.daphne_pids]

    def wait_until_quiet(self) -> tuple[bool, float]:
        """Wait (up to QUIET_WAIT_SECONDS) until the machine's CPU use, less ours, is under QUIET_CORES
        over one second; whether it was, and that use in cores."""
        deadline = time.monotonic() + QUIET_WAIT_SECONDS
        while True:
            busy, ours, started = machine_busy_ticks(), self.total(), time.monotonic()
            time.sleep(1)
            elapsed = time.monotonic() - started
            other = max(0, (machine_busy_ticks() - busy) - (self.total() - ours)) / CLK_TCK / elapsed
            if other < QUIET_CORES:
                return True, round(other, 2)
            if time.monotonic() >= deadline:
                return False, round(other, 2)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- Servers --------------------------------------------------------------------------------------


def start_redis(directory: Path) -> tuple[subprocess.Popen, str]:
    """A private redis-server pinned to SERVER_CPU (taskset execs it: the Popen's pid is redis-server's)."""
    port = free_port()
    command = [
        "taskset",
        "-c",
        str(SERVER_CPU),
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(directory),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(16).startswith(b"+PONG"):
                return process, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    stop_process(process)
    raise RuntimeError("redis-server did not start")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def start_daphnes(env: dict[str, str], count: int, log_dir: Path, all_cpus: str) -> tuple[int, list[subprocess.Popen]]:
    """`count` daphne processes serving bench_settings; their port and processes once they answer.

    One process listens on its own port, pinned to SERVER_CPU. Several share one listening socket bound
    here (`--fd`), unpinned."""
    listener = None
    if count == 1:
        port = free_port()
        where, pin, fds = ["-b", "127.0.0.1", "-p", str(port)], ["taskset", "-c", str(SERVER_CPU)], ()
    else:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        port = listener.getsockname()[1]
        where, pin, fds = ["--fd", str(listener.fileno())], ["taskset", "-c", all_cpus], (listener.fileno(),)
    processes: list[subprocess.Popen] = []
    logs = [log_dir / f"daphne-{n}.log" for n in range(count)]
    try:
        for log_path in logs:
            with open(log_path, "wb") as log:
                # stdout is daphne's access log (on by default, as in `make run`): written, then discarded.
                processes.append(
                    subprocess.Popen(
                        [*pin, sys.executable, "-m", "daphne", *where, "superai_flow.asgi:application"],
                        cwd=PROJECT_DIR,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=log,
                        pass_fds=fds,
                        start_new_session=True,
                    )
                )
    finally:
        if listener is not None:
            listener.close()  # the servers hold their own copies
    try:
        wait_for_daphnes(port, processes, logs)
    except BaseException:
        for process in processes:
            stop_process(process)
        raise
    return port, processes


def wait_for_daphnes(port: int, processes: list[subprocess.Popen], logs: list[Path]) -> None:
    """Until /readyz answers 200 (the database and the channel layer answer) and, with several processes
    sharing the socket (any of them may answer), each has stopped using CPU for a moment: done importing,
    waiting in accept."""
    deadline = time.monotonic() + START_SECONDS
    while True:
        for process, log in zip(processes, logs, strict=True):
            if process.poll() is not None:
                raise RuntimeError(
                    f"daphne exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
                )
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                break
        if time.monotonic() > deadline:
            raise RuntimeError(f"daphne did not answer within {START_SECONDS} s:\n{logs[0].read_text()[-3000:]}")
        time.sleep(0.1)
    if len(processes) > 1:
        before = [cpu_ticks(process.pid) for process in processes]
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = [cpu_ticks(process.pid) for process in processes]
            if all(b - a <= 1 for a, b in zip(before, now, strict=True)):
                return
            before = now
        say("  WARNING: the daphne processes kept using CPU at start; going on (the warm-ups cover the rest)")


# --- The load client ------------------------------------------------------------------------------


def http_request(path: str, port: int, body: bytes, key: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, keep = None, False, True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep = value.strip().lower() != b"close"
    if chunked:
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
            pass
        return status, b"".join(parts), keep
    if length is None:
        return status, await reader.read(), False
    return status, await reader.readexactly(length), keep


@dataclass
class Phase:
    """What the connections of one phase saw."""

    target: str
    concurrency: int
    acks: dict[str, float] | None = None  # output id -> when its 201 arrived (only when asked for)
    completions: list[tuple[float, float, bool]] = field(default_factory=list)  # (finished, latency s, 2xx)
    created: int = 0  # 201s of the create target, warm-up included
    first_error: str | None = None
    stop: bool = False

    def record(self, started: float, finished: float, status: int, body: bytes) -> None:
        ok = 200 <= status < 300
        self.completions.append((finished, finished - started, ok))
        if status == 201 and self.target == "create":
            self.created += 1
            if self.acks is not None:
                self.acks[json.loads(body)["id"]] = finished
        if not ok and self.first_error is None:
            self.first_error = f"HTTP {status}: {body[:300].decode(errors='replace')}"

    def fail(self, started: float, error: str) -> None:
        now = time.monotonic()
        self.completions.append((now, now - started, False))
        if self.first_error is None:
            self.first_error = error


async def connection(port: int, request: bytes, phase: Phase) -> None:
    """One keep-alive connection sending `request` back to back until the phase stops."""
    reader = writer = None
    try:
        while not phase.stop:
            started = time.monotonic()
            if writer is None:
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError as error:
                    phase.fail(started, f"connect: {error!r}")
                    await asyncio.sleep(0.1)
                    continue
            try:
                writer.write(request)
                status, body, keep = await read_response(reader)
            except (OSError, EOFError, asyncio.LimitOverrunError, ValueError, IndexError) as error:
                phase.fail(started, f"transport: {error!r}")
                writer.close()
                writer = None
                continue
            phase.record(started, time.monotonic(), status, body)
            if not keep:
                writer.close()
                writer = None
    finally:
        if writer is not None:
            writer.close()


async def run_phase(port: int, request: bytes, phase: Phase, warmup: float, seconds: float, procs: Processes):
    """Warm up, then time `seconds` of load: the phase's figures (CPU from /proc before and after)."""
    tasks = [asyncio.create_task(connection(port, request, phase)) for _ in range(phase.concurrency)]
    try:
        await asyncio.sleep(warmup)
        cpu_before, each_before, started = procs.cpu(), procs.daphne_each(), time.monotonic()
        await asyncio.sleep(seconds)
        ended, cpu_after, each_after = time.monotonic(), procs.cpu(), procs.daphne_each()
    finally:
        phase.stop = True
        _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
        for task in pending:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome
    window = [(latency, ok) for finished, latency, ok in phase.completions if started <= finished <= ended]
    answered = [latency * 1000 for latency, ok in window if ok]
    elapsed = ended - started
    cpu_ms = {name: (cpu_after[name] - cpu_before[name]) * 1000 / CLK_TCK for name in cpu_before}
    server_ms = cpu_ms["daphne"] + cpu_ms["postgres"] + cpu_ms["redis"]
    requests = len(window)

    def per_request(ms: float) -> float | None:
        return round(ms / requests, 3) if requests else None

    def quantile(fraction: float) -> float | None:
        return round(percentile(answered, fraction), 1) if answered else None

    return {
        "target": phase.target,
        "concurrency": phase.concurrency,
        "seconds": round(elapsed, 2),
        "requests": requests,
        "requests_per_s": round(requests / elapsed, 1),
        "p50_ms": quantile(0.5),
        "p95_ms": quantile(0.95),
        "p99_ms": quantile(0.99),
        "max_ms": round(max(answered), 1) if answered else None,
        "errors": requests - len(answered),
        "first_error": phase.first_error,
        "server_cpu_ms_per_request": per_request(server_ms),
        "cpu_ms_per_request": {
            name: per_request(cpu_ms[name]) for name in ("daphne", "daphne_loop", "postgres", "redis")
        },
        "server_cores": round(server_ms / 1000 / elapsed, 2),
        "daphne_cores_each": [
            round((b - a) / CLK_TCK / elapsed, 2) for a, b in zip(each_before, each_after, strict=True)
        ],
        "client_cores": round(cpu_ms["client"] / 1000 / elapsed, 2),
    }


# --- The measurements -----------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    port: int
    key: str
    body: bytes
    procs: Processes
    warnings: list[str] = field(default_factory=list)
    creates_acknowledged: int = 0

    def quiet(self, what: str) -> dict:
        quiet, other = self.procs.wait_until_quiet()
        if not quiet:
            self.warnings.append(f"not quiet before {what}: the rest of the machine used {other} cores")
            say(f"  WARNING: the machine is not quiet ({other} cores busy elsewhere); measuring anyway")
        return {"quiet": quiet, "other_load_cores": other}

    def phase(self, target: str, concurrency: int) -> dict:
        say(f"c={concurrency:<3} {target:15} warm-up {self.args.warmup:g} s, then {self.args.seconds:g} s ...")
        quiet = self.quiet(f"{target} at concurrency {concurrency}")
        phase = Phase(target, concurrency)
        request = http_request(TARGETS[target], self.port, self.body, self.key)
        row = asyncio.run(run_phase(self.port, request, phase, self.args.warmup, self.args.seconds, self.procs))
        self.creates_acknowledged += phase.created
        row.update(quiet)
        say(
            f"      {row['requests_per_s']:8.1f} req/s  p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  "
            f"errors {row['errors']}  server CPU {row['server_cpu_ms_per_request']} ms/req"
        )
        if row["first_error"]:
            say(f"      first error: {row['first_error']}")
        return row

    def websocket(self, flow_id: str) -> dict:
        concurrency = self.args.websocket_concurrency
        say(f"c={concurrency:<3} create with a WebSocket watcher of the flow execution, {self.args.seconds:g} s ...")
        quiet = self.quiet("the WebSocket phase")
        result = asyncio.run(self._websocket(flow_id, concurrency))
        result.update(quiet)
        say(
            f"      {result['deliveries']} delivered; after 201 p50 {result['after_201_p50_ms']} ms, "
            f"p99 {result['after_201_p99_ms']} ms; drained {result['drain_ms']} ms after the last 201"
        )
        return result

    async def _websocket(self, flow_id: str, concurrency: int) -> dict:
        from websockets.asyncio.client import connect

        arrivals: dict[str, float] = {}
        url = f"ws://127.0.0.1:{self.port}/ws/flow-executions/{flow_id}/"
        headers = {"Authorization": f"Bearer {self.key}"}
        phase = Phase("create", concurrency, acks={})
        request = http_request(TARGETS["create"], self.port, self.body, self.key)
        async with connect(url, additional_headers=headers, open_timeout=30) as watcher:

            async def listen() -> None:
                async for text in watcher:
                    arrived = time.monotonic()
                    message = json.loads(text)
                    if message["type"] == "task_output.created":
                        arrivals.setdefault(message["data"]["id"], arrived)

            listener = asyncio.create_task(listen())
            await asyncio.sleep(1)  # the consumer joins its group after the handshake
            if listener.done():
                raise RuntimeError(f"the WebSocket closed: {watcher.close_code} {watcher.close_reason!r}")
            row = await run_phase(self.port, request, phase, 0, self.args.seconds, self.procs)
            last_201 = max(phase.acks.values(), default=time.monotonic())
            deadline = time.monotonic() + DRAIN_SECONDS
            while not listener.done() and time.monotonic() < deadline and not phase.acks.keys() <= arrivals.keys():
                await asyncio.sleep(0.01)
            closed = f"{watcher.close_code} {watcher.close_reason!r}" if listener.done() else None
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        self.creates_acknowledged += phase.created
        latencies = [(arrivals[i] - acked) * 1000 for i, acked in phase.acks.items() if i in arrivals]
        delivered = [arrivals[i] for i in phase.acks if i in arrivals]

        def quantile(fraction: float) -> float | None:
            return round(percentile(latencies, fraction), 1) if latencies else None

        return {
            "concurrency": concurrency,
            "creates": len(phase.acks),
            "messages": len(delivered),
            "deliveries": f"{len(delivered)}/{len(phase.acks)}",
            "after_201_p50_ms": quantile(0.5),
            "after_201_p99_ms": quantile(0.99),
            "after_201_max_ms": round(max(latencies), 1) if latencies else None,
            "drain_ms": round((max(delivered) - last_201) * 1000, 1) if delivered else None,
            "closed_early": closed,
            "create_row": row,
        }


PGBENCH_INSERT = (
    "INSERT INTO task_outputs_taskoutput (id, organization_id, flow_execution_id, flow_version, task_execution_id, "
    "task_name, status, summary, output, tags, modified_by, created_at, updated_at, write_txid, write_horizon, "
    "cursor_horizon, revision) VALUES (gen_random_uuid(), '{organization_id}', '{flow_execution_id}', 1, NULL, "
    "'{task_name}', '{status}', '{summary}', '{output}', '{tags}', 'system', now(), now(), "
    "pg_current_xact_id()::text::bigint, pg_snapshot_xmin(pg_current_snapshot())::text::bigint, "
    "pg_snapshot_xmin(pg_current_snapshot())::text::bigint, 1);\n"
)


def pgbench(bench: Bench, deployment: Deployment, pg: PrivatePostgres, script: Path, clients: int) -> dict:
    """`clients` pgbench connections inserting the row for --seconds: inserts/s, PostgreSQL CPU per insert."""
    say(f"c={clients:<3} pgbench INSERT of the same row, {bench.args.seconds:g} s ...")
    quiet = bench.quiet(f"pgbench at {clients} clients")
    command = [
        "taskset",
        "-c",
        str(CLIENT_CPU),
        "pgbench",
        "-n",
        "-f",
        str(script),
        "-c",
        str(clients),
        "-j",
        "1",
        "-T",
        str(max(1, round(bench.args.seconds))),
        "-h",
        "127.0.0.1",
        "-p",
        str(pg.port),
        "-U",
        "postgres",
        deployment.database,
    ]
    children = len(pg.processes())
    before = bench.procs.cpu()["postgres"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=bench.args.seconds + 120)
    deadline = time.monotonic() + 10
    while len(pg.processes()) > children and time.monotonic() < deadline:  # its backends end and are reaped
        time.sleep(0.05)
    postgres_ms = (bench.procs.cpu()["postgres"] - before) * 1000 / CLK_TCK
    if run.returncode:
        raise RuntimeError(f"pgbench failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    transactions = int(re.search(r"number of transactions actually processed: (\d+)", run.stdout).group(1))
    tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", run.stdout).group(1))
    latency = re.search(r"latency average = ([\d.]+) ms", run.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", run.stdout)
    row = {
        "clients": clients,
        "inserts": transactions,
        "inserts_per_s": round(tps, 1),
        "latency_avg_ms": float(latency.group(1)) if latency else None,
        "failed": int(failed.group(1)) if failed else 0,
        "postgres_cpu_ms_per_insert": round(postgres_ms / transactions, 3) if transactions else None,
        **quiet,
    }
    say(f"      {row['inserts_per_s']:8.1f} inserts/s  PostgreSQL CPU {row['postgres_cpu_ms_per_insert']} ms/insert")
    return row


# --- Output ---------------------------------------------------------------------------------------


def markdown(report: dict) -> str:
    def cell(value, digits: int = 1) -> str:
        return "—" if value is None else f"{value:,.{digits}f}"

    several = report["config"]["processes"] > 1  # then: how busy each daphne process was
    lines = [
        "| concurrency | target | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | server CPU ms/req "
        "| daphne (its event loop) / PostgreSQL / Redis ms | create ÷ this (CPU) |"
        + (" cores of each daphne |" if several else ""),
        "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if several else ""),
    ]
    creates = {row["concurrency"]: row for row in report["rows"] if row["target"] == "create"}
    for row in report["rows"]:
        create = creates.get(row["concurrency"])
        ratio = None
        if (
            row["target"] != "create"
            and create
            and create["server_cpu_ms_per_request"]
            and row["server_cpu_ms_per_request"]
        ):
            ratio = create["server_cpu_ms_per_request"] / row["server_cpu_ms_per_request"]
        cpu = row["cpu_ms_per_request"]
        split = f"{cell(cpu['daphne'], 2)} ({cell(cpu['daphne_loop'], 2)}) / " + " / ".join(
            cell(cpu[name], 2) for name in ("postgres", "redis")
        )
        quiet = "" if row["quiet"] else " (not quiet)"
        lines.append(
            f"| {row['concurrency']} | {row['target']}{quiet} | {cell(row['requests_per_s'])} | {cell(row['p50_ms'])} "
            f"| {cell(row['p95_ms'])} | {cell(row['p99_ms'])} | {cell(row['max_ms'])} | {row['errors']} "
            f"| {cell(row['server_cpu_ms_per_request'], 2)} | {split} | {cell(ratio, 2)} |"
            + (f" {' / '.join(cell(cores, 2) for cores in row['daphne_cores_each'])} |" if several else "")
        )
    if report.get("pgbench"):
        lines += [
            "",
            "| pgbench clients | inserts/s | latency avg ms | PostgreSQL CPU ms/insert |",
            "|---|---|---|---|",
        ]
        for row in report["pgbench"]:
            lines.append(
                f"| {row['clients']} | {cell(row['inserts_per_s'])} | {cell(row['latency_avg_ms'], 2)} "
                f"| {cell(row['postgres_cpu_ms_per_insert'], 3)} |"
            )
    ws = report.get("websocket")
    if ws:
        lines += [
            "",
            "| WebSocket: creates at concurrency | creates/s | deliveries | after 201 p50 | p99 | max "
            "| drain after last 201 |",
            "|---|---|---|---|---|---|---|",
            f"| {ws['concurrency']} | {cell(ws['create_row']['requests_per_s'])} | {ws['deliveries']} "
            f"| {cell(ws['after_201_p50_ms'])} ms | {cell(ws['after_201_p99_ms'])} ms "
            f"| {cell(ws['after_201_max_ms'])} ms | {cell(ws['drain_ms'])} ms |",
        ]
    lines += ["", *(f"- {note}" for note in report["notes"])]
    lines += [f"- WARNING: {warning}" for warning in report["warnings"]]
    return "\n".join(lines)


# --- Main -----------------------------------------------------------------------------------------


def raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32], help="connections (default 1 8 32)")
    parser.add_argument("--seconds", type=float, default=10, help="timed phase (default 10)")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up before each timed phase (default 2)")
    parser.add_argument("--processes", type=int, default=1, help="daphne processes on one socket (default 1)")
    parser.add_argument("--websocket-concurrency", type=int, default=32, help="creates during the WebSocket phase")
    parser.add_argument("--skip-pgbench", action="store_true")
    parser.add_argument("--skip-websocket", action="store_true")
    args = parser.parse_args()
    if args.processes < 1 or min(args.concurrency) < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--processes and --concurrency must be at least 1, --seconds positive, --warmup not negative")
    cpus = sorted(os.sched_getaffinity(0))
    if not {SERVER_CPU, CLIENT_CPU} <= set(cpus):
        parser.error(f"needs CPUs {SERVER_CPU} and {CLIENT_CPU}; this process may use {cpus}")
    all_cpus = ",".join(map(str, cpus))
    os.sched_setaffinity(0, {CLIENT_CPU})  # the client; the servers are started pinned (or not) explicitly
    signal.signal(signal.SIGTERM, raise_interrupt)
    started = time.monotonic()

    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="superai-bench-")))
        say(f"Starting a private PostgreSQL (pinned to CPU {SERVER_CPU}) ...")
        pg = stack.enter_context(PrivatePostgres(cpus=str(SERVER_CPU)))
        version = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-qAtc", "SHOW server_version"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        say(f"  PostgreSQL {version} on {pg.server}; starting a private redis-server (CPU {SERVER_CPU}) ...")
        redis, redis_url = start_redis(work)
        stack.callback(stop_process, redis)
        env = {"REDIS_URL": redis_url, "CHANNEL_LAYER_PREFIX": f"bench-{uuid.uuid4().hex[:8]}", "API_RATE_LIMIT": ""}
        deployment = stack.enter_context(Deployment(server=pg.server, **env))
        organization_id, key = deployment.tenant()
        pythonpath = os.pathsep.join([str(BENCH_DIR), str(PROJECT_DIR), *filter(None, [os.environ.get("PYTHONPATH")])])
        server_env = {**deployment.env, "DJANGO_SETTINGS_MODULE": "bench_settings", "PYTHONPATH": pythonpath}
        pinning = (
            f"daphne pinned to CPU {SERVER_CPU}"
            if args.processes == 1
            else f"{args.processes} daphne processes sharing one socket, NOT pinned (they use both CPUs, the "
            "client's too)"
        )
        say(f"Starting {pinning} ...")
        port, daphnes = start_daphnes(server_env, args.processes, work, all_cpus)
        for process in daphnes:
            stack.callback(stop_process, process)
        procs = Processes(pg, redis.pid, [process.pid for process in daphnes])

        response = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/flow-executions",
            json={"organization_id": organization_id, "flow_name": "bench-throughput"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        if response.status_code != 201:
            raise RuntimeError(f"creating the flow execution answered {response.status_code}: {response.text}")
        flow_id = response.json()["id"]
        body = task_output_body(organization_id, flow_id, text_bytes=800, tags=["bench", "pdf"])
        bench = Bench(args, port, key, json.dumps(body).encode(), procs)

        rows = [bench.phase(target, c) for c in args.concurrency for target in TARGETS]
        if CLIENT_CEILING_CONCURRENCY not in args.concurrency:
            rows.append(bench.phase("trivial-django", CLIENT_CEILING_CONCURRENCY))
        ceiling = next(
            r for r in rows if r["target"] == "trivial-django" and r["concurrency"] == CLIENT_CEILING_CONCURRENCY
        )
        websocket = None if args.skip_websocket else bench.websocket(flow_id)

        stored = int(
            deployment.psql(
                f"SELECT count(*) FROM task_outputs_taskoutput WHERE organization_id = '{organization_id}'",
                capture=True,
            )
        )
        rows_check = {
            "rows_stored": stored,
            "creates_acknowledged": bench.creates_acknowledged,
            "match": stored == bench.creates_acknowledged,
        }
        say(
            f"Rows stored {stored:,}, 201s received {bench.creates_acknowledged:,}: "
            f"{'match' if rows_check['match'] else 'MISMATCH'}"
        )
        if not rows_check["match"]:
            bench.warnings.append(
                f"rows stored ({stored}) differ from the 201s received ({bench.creates_acknowledged})"
            )

        pgbench_rows = []
        if not args.skip_pgbench:
            script = work / "insert.sql"
            values = {
                name: json.dumps(value) if isinstance(value, dict | list) else value for name, value in body.items()
            }
            script.write_text(PGBENCH_INSERT.format(**values))
            pgbench_rows = [pgbench(bench, deployment, pg, script, clients) for clients in (1, 8)]

    notes = [
        f"{pinning}; PostgreSQL {version} (private, fsync on) and redis-server pinned to CPU {SERVER_CPU}; "
        f"the load client on CPU {CLIENT_CPU}.",
        f"Warm-up {args.warmup:g} s, then {args.seconds:g} s per row; latencies of answered requests; server CPU = "
        "daphne + PostgreSQL + Redis utime+stime (/proc) per request.",
        f"Client ceiling: trivial-django at concurrency {CLIENT_CEILING_CONCURRENCY} ran "
        f"{ceiling['requests_per_s']:,.1f} req/s with the client using {ceiling['client_cores']} of its core: "
        "this client measures at least that rate, which bounds what it can show.",
        f"Rows stored {stored:,} = 201s received {bench.creates_acknowledged:,}: {rows_check['match']}.",
    ]
    if args.processes > 1:
        notes.append(
            "With one shared listening socket the kernel does not balance keep-alive connections between the "
            "daphne processes: whichever is waiting in accept() takes them (see the cores of each daphne)."
        )
    if pgbench_rows:
        notes.append(
            "pgbench: the same row INSERTed as the superuser (no row-level security), all indexes in "
            f"place, client pinned to CPU {CLIENT_CPU}, -j 1."
        )
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "config": {
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "processes": args.processes,
            "daphne_pinned": args.processes == 1,
            "postgres": version,
            "body_bytes": len(bench.body),
        },
        "rows": rows,
        "client_ceiling": {
            "concurrency": CLIENT_CEILING_CONCURRENCY,
            "requests_per_s": ceiling["requests_per_s"],
            "client_cores": ceiling["client_cores"],
        },
        "websocket": websocket,
        "rows_check": rows_check,
        "pgbench": pgbench_rows,
        "notes": notes,
        "warnings": bench.warnings,
        "total_seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report, indent=2))
    print()
    print(markdown(report))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        say("Interrupted: the servers are stopped and their temporary files deleted.")
        sys.exit(130)
