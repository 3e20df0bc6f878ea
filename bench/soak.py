"""Soak: many retried creates and reconnecting WebSocket clients against `make serve`; nothing may be lost.

What runs, all on this machine, deleted at the end (also after an error or Ctrl-C):

- PostgreSQL: a private instance (tests/e2e/servers.py `PrivatePostgres`, fsync on, not pinned), deployed
  like production (bench/common.py `Deployment`: migrated by the owner, served by a runtime role under
  row-level security); or, with --postgres HOST:PORT, a throwaway database on that server (superuser
  "postgres" without a password, as common.py expects).
- Redis: a private redis-server on a free port (tests/e2e/servers.py `RedisServer`), or --redis-url with a
  CHANNEL_LAYER_PREFIX of this run's own.
- The server: `make serve` with WEB_CONCURRENCY=--processes (supervisord, daphne processes sharing one
  listening socket), as operators run it (docs/operations.md), with the rate limit off (API_RATE_LIMIT="":
  one key sends everything) and every other setting at its default (LIVE_CURSOR_GRACE_SECONDS 15 s,
  WS_MAX_REPLAY 10,000, WS_REPLAY_CACHE_MB 4, pools of 20).

The load, from this process (asyncio):

- --workers HTTP workers make --creates task outputs in one flow execution (POST /api/v1/task-outputs).
  Each create carries a client-supplied `id`; on a transport error (connection refused or reset,
  timeout) or a 5xx or 429 answer the worker sends the same request again, same `id`, after a short
  backoff, until it is acknowledged: 201, or 200 for a replay of an id already stored. Any other answer
  is a failure of the run ("rejected"). Each worker opens a new connection every RECONNECT_EVERY
  requests, so that both daphne processes take creates (the kernel hands each connection to one).
- --websockets clients watch the creates: even-numbered ones the flow execution's feed
  (/ws/flow-executions/<id>/), odd-numbered ones the organization's summary feed
  (/ws/task-outputs/summaries/), with `Authorization: Bearer <key>`. Each starts from the X-Live-Cursor of
  an empty listing, stays connected for a random MIN_LIFETIME..MAX_LIFETIME seconds, disconnects,
  waits up to MAX_PAUSE seconds and reconnects with {"type": "resume", "after": <its cursor>} (a
  connection's cursors count only once it has received `resumed`: docs/live-updates.md), recording
  the id of every task output it receives (a set: duplicates are expected and counted). On
  `resync_required` it reloads the flow execution's outputs over REST and resumes from the first
  page's X-Live-Cursor, as the protocol says.
- Warm-up: the first --warmup creates (default 10% of --creates) with every client connected; each daphne
  process's RSS (VmRSS of /proc/<pid>/status) is taken when the warm-up's last create is acknowledged.
- After the last create is acknowledged, every client disconnects and resumes one last time, reading until
  `resumed`; then each daphne's RSS is taken again.

Checks (any failure: exit status 1):

- acknowledged: every create acknowledged, and none rejected;
- stored = acknowledged: the flow execution's ids in the database (queried as the superuser) are exactly
  the acknowledged ids, none lost and none extra, and count(*) = count(DISTINCT id) = --creates;
- every client saw every acknowledged id (per-client missing ids: all 0);
- no daphne process was restarted, and each one's RSS at the end is at most RSS_TOLERANCE (20%) above its
  RSS after the warm-up.

Reported: throughput (acknowledged creates per second of the create phase), create latency of the
acknowledged attempts, answers by status, errors by kind (transport errors by exception, HTTP statuses
other than 201/200), lost and extra ids, per-process RSS (warm-up, end, peak) and CPU, per-client
connections, messages, duplicates and missing ids, and the durations. How clients fare with their resumes,
per client and in total: connections that ended before `resumed` (or `resync_required`) came, the time from
sending `resume` to receiving `resumed` (p50 / p90 / max), when each client last reached `resumed` during the
creates (seconds into them, and how many were acknowledged by then), and the longest it went without; this
process's own CPU during the creates (it reads every client); each daphne's MALLOC_ARENA_MAX. Progress goes
to stderr; at the end a JSON document, then markdown, go to stdout.

    python bench/soak.py                                   # 20,000 creates, 16 workers, 50 clients, 2 processes
    python bench/soak.py --creates 1500 --workers 8 --websockets 10    # the CI test's size (tests/e2e/test_soak.py)
    python bench/soak.py --postgres 127.0.0.1:5432 --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from common import Deployment, PrivatePostgres, percentile
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.e2e.servers import MakeServe, RedisServer

RECONNECT_EVERY = 100  # requests per HTTP connection of a worker
MIN_LIFETIME, MAX_LIFETIME = 2.0, 10.0  # seconds a WebSocket client stays connected
MAX_PAUSE = 0.5  # seconds it may wait before reconnecting
RSS_TOLERANCE = 0.20  # end RSS at most this much above the warm-up RSS
REQUEST_TIMEOUT = 30  # seconds; a create that takes longer is a transport error, and retried
MAX_BACKOFF = 2.0  # seconds between retries of one create, at most
START_SECONDS = 120  # how long `make serve` may take to answer with every process
FINAL_RESUME_SECONDS = 180  # how long the last resume of a client may take
SUMMARIES = "/ws/task-outputs/summaries/"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- The server: `make serve` ---------------------------------------------------------------------


def rss_kb(pid: int) -> int | None:
    """VmRSS of `pid` in kB, None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def environment(pid: int) -> dict[str, str]:
    """The environment `pid` started with (empty when it is gone)."""
    try:
        entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return {}
    return dict(entry.decode(errors="replace").partition("=")[::2] for entry in entries if b"=" in entry)


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of `pid` (all its threads) in seconds, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_settled(serve: MakeServe) -> None:
    """Until `make serve` answers with every process, then until their CPU settles (imports done)."""
    deadline = time.monotonic() + START_SECONDS
    serve.wait_until_answering(timeout=START_SECONDS)
    before = [cpu_seconds(pid) or 0 for pid in serve.daphnes()]
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = [cpu_seconds(pid) or 0 for pid in serve.daphnes()]
        if all(b - a < 0.05 for a, b in zip(before, now, strict=False)):
            return
        before = now


# --- The load -------------------------------------------------------------------------------------


@dataclass
class Config:
    creates: int = 20_000
    workers: int = 16
    websockets: int = 50
    processes: int = 2
    warmup: int | None = None  # creates before the warm-up RSS; default 10% of creates
    postgres: str | None = None  # "host:port" of an existing server; None: a private one
    redis_url: str | None = None  # None: a private redis-server
    seed: int | None = None

    @property
    def warmup_creates(self) -> int:
        return self.warmup if self.warmup is not None else max(1, self.creates // 10)


@dataclass
class Creates:
    """What the HTTP workers did."""

    acknowledged: set[str] = field(default_factory=set)
    rejected: dict[str, str] = field(default_factory=dict)  # id -> the answer that was not retried
    statuses: Counter = field(default_factory=Counter)  # every answer, by status
    transport: Counter = field(default_factory=Counter)  # transport errors, by exception
    latencies: list[float] = field(default_factory=list)  # seconds, of the acknowledged attempts
    retried_ids: int = 0
    next_index: int = 0
    started: float = 0.0
    finished: float = 0.0


@dataclass
class Watcher:
    """One WebSocket client: what it saw over all its connections."""

    number: int
    path: str
    cursor: str  # where the next connection resumes from
    latest: str | None = None  # the newest cursor seen on this connection
    resumed: bool = False  # whether this connection has received `resumed`
    seen: set[str] = field(default_factory=set)
    connections: int = 0
    messages: int = 0  # task-output messages, duplicates included
    duplicates: int = 0
    resyncs: int = 0
    errors: Counter = field(default_factory=Counter)  # failed connections and unexpected closes, by kind
    unresumed: int = 0  # connections that ended before `resumed` (or `resync_required`) came
    resume_seconds: list[float] = field(default_factory=list)  # from sending `resume` to receiving `resumed`
    resumed_at: list[tuple[float, int]] = field(default_factory=list)  # (seconds into the creates, acknowledged)


class Soak:
    def __init__(self, config: Config, url: str, key: str, organization_id: str, flow_id: str, serve: MakeServe):
        self.config = config
        self.url = url
        self.ws_url = url.replace("http", "ws", 1)
        self.key = key
        self.headers = {"Authorization": f"Bearer {key}"}
        self.organization_id = organization_id
        self.flow_id = flow_id
        self.serve = serve
        self.creates = Creates()
        self.random = random.Random(config.seed)
        self.stop_watching = asyncio.Event()
        self.warmed_up = asyncio.Event()
        self.pids = serve.daphnes()
        self.rss_warmup: dict[int, int | None] = {}
        self.rss_peak: dict[int, int] = dict.fromkeys(self.pids, 0)
        self.cpu_start: dict[int, float | None] = {pid: cpu_seconds(pid) for pid in self.pids}
        self.arena_max = {pid: environment(pid).get("MALLOC_ARENA_MAX") for pid in self.pids}

    # --- Creates ---

    def body(self, index: int, output_id: str) -> bytes:
        return json.dumps(
            {
                "id": output_id,
                "organization_id": self.organization_id,
                "flow_execution_id": self.flow_id,
                "task_name": f"soak-{index % 8}",
                "status": "completed",
                "summary": {"index": index, "pages": 10},
                "output": {"text": "x" * 500},
                "tags": ["soak"],
            }
        ).encode()

    def http_client(self) -> httpx.AsyncClient:
        headers = {**self.headers, "Content-Type": "application/json"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=REQUEST_TIMEOUT)

    async def worker(self) -> None:
        creates = self.creates
        client, sent = self.http_client(), 0
        try:
            while creates.next_index < self.config.creates:
                index = creates.next_index
                creates.next_index += 1
                output_id = str(uuid.uuid4())
                body = self.body(index, output_id)
                attempt = 0
                while True:
                    if sent >= RECONNECT_EVERY:
                        await client.aclose()
                        client, sent = self.http_client(), 0
                    attempt += 1
                    sent += 1
                    started = time.monotonic()
                    try:
                        response = await client.post("/api/v1/task-outputs", content=body)
                    except httpx.TransportError as error:
                        creates.transport[type(error).__name__] += 1
                        await client.aclose()  # its connection may be broken: a new one
                        client, sent = self.http_client(), 0
                    else:
                        creates.statuses[response.status_code] += 1
                        if response.status_code in (200, 201):
                            creates.latencies.append(time.monotonic() - started)
                            creates.acknowledged.add(output_id)
                            if len(creates.acknowledged) == self.config.warmup_creates:
                                self.warmed_up.set()
                            break
                        if response.status_code < 500 and response.status_code != 429:
                            creates.rejected[output_id] = f"HTTP {response.status_code}: {response.text[:300]}"
                            break
                    if attempt == 2:
                        creates.retried_ids += 1
                    await asyncio.sleep(min(MAX_BACKOFF, 0.05 * 2 ** min(attempt, 6)) * self.random.uniform(0.5, 1))
        finally:
            await client.aclose()

    # --- WebSocket clients ---

    def take(self, watcher: Watcher, raw: str | bytes) -> str | None:
        """Record one message; its type."""
        message = json.loads(raw)
        kind = message.get("type")
        if kind in ("task_output.created", "task_output.updated", "task_output.summary"):
            output_id = message["data"]["id"]
            if message["data"].get("flow_execution_id") not in (None, self.flow_id):
                return kind
            watcher.messages += 1
            if output_id in watcher.seen:
                watcher.duplicates += 1
            else:
                watcher.seen.add(output_id)
            watcher.latest = message["cursor"]
            if watcher.resumed:  # the documented rule: a cursor counts once its connection has resumed
                watcher.cursor = watcher.latest
        elif kind == "resumed":
            watcher.resumed = True
            watcher.cursor = watcher.latest or watcher.cursor
            at = time.monotonic() - self.creates.started if self.creates.started else 0.0  # 0: before the creates
            watcher.resumed_at.append((at, len(self.creates.acknowledged)))
        return kind

    async def resync(self, watcher: Watcher, client: httpx.AsyncClient) -> None:
        """`resync_required`: reload the flow execution's outputs over REST, resume from the first page's cursor."""
        watcher.resyncs += 1
        params: dict[str, str] | None = {"flow_execution_id": self.flow_id, "page_size": "500"}
        path, first = "/api/v1/task-outputs", True
        while path:
            response = await client.get(path, params=params, timeout=REQUEST_TIMEOUT)
            response.raise_for_status()
            if first:
                watcher.cursor, first = response.headers["X-Live-Cursor"], False
            watcher.seen.update(row["id"] for row in response.json()["results"])
            path, params = response.json().get("next"), None

    async def session(self, watcher: Watcher, client: httpx.AsyncClient, lifetime: float | None) -> bool:
        """One connection: resume from the client's cursor, read for `lifetime` seconds (None: until
        `resumed`). Whether it ended as planned."""
        loop = asyncio.get_running_loop()
        watcher.connections += 1
        answered = False  # `resumed` or `resync_required` came
        try:
            async with connect(
                self.ws_url + watcher.path,
                additional_headers=self.headers,
                open_timeout=30,
                close_timeout=5,
                max_size=None,
            ) as socket:
                watcher.resumed, watcher.latest = False, None
                await socket.send(json.dumps({"type": "resume", "after": watcher.cursor}))
                sent = loop.time()
                deadline = None if lifetime is None else loop.time() + lifetime
                while True:
                    if deadline is None:
                        timeout = FINAL_RESUME_SECONDS
                    else:
                        timeout = deadline - loop.time()
                        if timeout <= 0 or self.stop_watching.is_set():
                            return True
                    try:
                        raw = await asyncio.wait_for(socket.recv(), timeout)
                    except TimeoutError:
                        if deadline is None:
                            watcher.errors["final resume timed out"] += 1
                            return False
                        return True
                    kind = self.take(watcher, raw)
                    if kind == "resync_required":
                        answered = True
                        await self.resync(watcher, client)
                        return True  # reconnect at once from the new cursor
                    if kind == "resumed" and not answered:
                        answered = True
                        watcher.resume_seconds.append(loop.time() - sent)
                        if deadline is None:
                            return True
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else "none"
            watcher.errors[f"closed by the server ({code})"] += 1
        except (OSError, InvalidHandshake, TimeoutError) as error:
            watcher.errors[f"connect: {type(error).__name__}"] += 1
        finally:
            watcher.unresumed += not answered
        return False

    async def watch(self, watcher: Watcher) -> None:
        async with httpx.AsyncClient(base_url=self.url, headers=self.headers) as client:
            while not self.stop_watching.is_set():
                planned = await self.session(watcher, client, self.random.uniform(MIN_LIFETIME, MAX_LIFETIME))
                pause = self.random.uniform(0, MAX_PAUSE) if planned else 0.5
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_watching.wait(), pause)
            # The last resume, after every create was acknowledged: until `resumed` (a few tries).
            for _ in range(5):
                if await self.session(watcher, client, None):
                    break
                await asyncio.sleep(1)

    # --- Memory ---

    async def sample_memory(self) -> None:
        while True:
            for pid in self.pids:
                self.rss_peak[pid] = max(self.rss_peak[pid], rss_kb(pid) or 0)
            if self.warmed_up.is_set() and not self.rss_warmup:
                self.rss_warmup = {pid: rss_kb(pid) for pid in self.pids}
                rss = ", ".join(f"{pid}: {kb / 1024:.1f} MiB" for pid, kb in self.rss_warmup.items() if kb)
                say(f"  warm-up done ({self.config.warmup_creates:,} creates): RSS {rss}")
            await asyncio.sleep(0.25 if not self.rss_warmup else 1)

    async def progress(self) -> None:
        while True:
            await asyncio.sleep(10)
            creates = self.creates
            elapsed = time.monotonic() - creates.started
            errors = sum(creates.transport.values()) + sum(
                n for status, n in creates.statuses.items() if status not in (200, 201)
            )
            say(
                f"  {elapsed:6.0f} s: {len(creates.acknowledged):,}/{self.config.creates:,} acknowledged "
                f"({len(creates.acknowledged) / elapsed:.0f}/s), {errors} errors, "
                f"RSS {', '.join(f'{(rss_kb(pid) or 0) / 1024:.0f}' for pid in self.pids)} MiB"
            )

    async def run(self) -> None:
        listing = httpx.get(
            f"{self.url}/api/v1/task-outputs",
            params={"flow_execution_id": self.flow_id},
            headers=self.headers,
            timeout=30,
        )
        listing.raise_for_status()
        cursor = listing.headers["X-Live-Cursor"]
        self.watchers = [
            Watcher(n, f"/ws/flow-executions/{self.flow_id}/" if n % 2 == 0 else SUMMARIES, cursor)
            for n in range(self.config.websockets)
        ]
        memory = asyncio.create_task(self.sample_memory())
        progress = asyncio.create_task(self.progress())
        watching = [asyncio.create_task(self.watch(watcher)) for watcher in self.watchers]
        try:
            await asyncio.sleep(1)  # every client connected before the first create
            say(
                f"Creating {self.config.creates:,} task outputs from {self.config.workers} workers, "
                f"{self.config.websockets} WebSocket clients reconnecting every {MIN_LIFETIME:g}-{MAX_LIFETIME:g} s"
            )
            self.creates.started = time.monotonic()
            cpu_started = time.process_time()
            await asyncio.gather(*(self.worker() for _ in range(self.config.workers)))
            self.creates.finished = time.monotonic()
            self.client_cpu_seconds = time.process_time() - cpu_started
            progress.cancel()
            say(
                f"  creates done in {self.creates.finished - self.creates.started:.1f} s; the clients' last resumes ..."
            )
            self.stop_watching.set()
            started = time.monotonic()
            await asyncio.gather(*watching)
            self.final_resume_seconds = time.monotonic() - started
            say(f"  last resumes done in {self.final_resume_seconds:.1f} s")
            if not self.rss_warmup:  # the warm-up ended with the last create
                self.rss_warmup = {pid: rss_kb(pid) for pid in self.pids}
            await asyncio.sleep(1)
        finally:
            for task in (memory, progress, *watching):
                task.cancel()
            await asyncio.gather(memory, progress, *watching, return_exceptions=True)


# --- The run and its report -----------------------------------------------------------------------


def spread(samples: list[float]) -> dict[str, float | None]:
    """p50, p90 and max of `samples` in seconds (None when there are none)."""
    if not samples:
        return {"p50_s": None, "p90_s": None, "max_s": None}
    return {
        "p50_s": round(percentile(samples, 0.5), 2),
        "p90_s": round(percentile(samples, 0.9), 2),
        "max_s": round(max(samples), 2),
    }


def resumes(watcher: Watcher, create_seconds: float) -> dict:
    """When `watcher` reached `resumed` during the creates: the last time, and the longest time without."""
    during = [(at, acknowledged) for at, acknowledged in watcher.resumed_at if at <= create_seconds]
    moments = [0.0, *(at for at, _ in during), create_seconds]
    return {
        "resume_to_resumed": spread(watcher.resume_seconds),
        "last_resumed_s": round(during[-1][0], 1) if during else None,
        "last_resumed_creates": during[-1][1] if during else None,
        "longest_without_resumed_s": round(max(b - a for a, b in itertools.pairwise(moments)), 1),
    }


def run(config: Config) -> dict:
    """The soak, from servers to checks; the report (its "passed" says whether every check held)."""
    started = time.monotonic()
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="superai-soak-")))
        if config.postgres:
            server = config.postgres
        else:
            say("Starting a private PostgreSQL ...")
            server = stack.enter_context(PrivatePostgres(cpus=None)).server
        redis_url = config.redis_url
        if redis_url is None:
            say("Starting a private redis-server ...")
            redis_url = stack.enter_context(RedisServer()).url
        env = {
            "REDIS_URL": redis_url,
            "CHANNEL_LAYER_PREFIX": f"soak-{uuid.uuid4().hex[:8]}",
            "API_RATE_LIMIT": "",
            "SUPERAI_FLOW_VAR_DIR": str(work / "var"),
        }
        deployment = stack.enter_context(Deployment(server=server, **env))
        organization_id, key = deployment.tenant()
        say(f"make serve with {config.processes} processes ...")
        serve = MakeServe(deployment.env, work / "serve.log", config.processes)
        stack.callback(serve.stop)
        wait_until_settled(serve)
        flow = httpx.post(
            f"{serve.url}/api/v1/flow-executions",
            headers={"Authorization": f"Bearer {key}"},
            json={"organization_id": organization_id, "flow_name": "soak"},
            timeout=30,
        )
        if flow.status_code != 201:
            raise RuntimeError(f"creating the flow execution answered {flow.status_code}: {flow.text}")
        flow_id = flow.json()["id"]
        soak = Soak(config, serve.url, key, organization_id, flow_id, serve)
        say(
            f"  daphne processes {soak.pids}, RSS "
            + ", ".join(f"{(rss_kb(pid) or 0) / 1024:.1f} MiB" for pid in soak.pids)
        )
        asyncio.run(soak.run())

        rss_end = {pid: rss_kb(pid) for pid in soak.pids}
        cpu_end = {pid: cpu_seconds(pid) for pid in soak.pids}
        pids_end = serve.daphnes()
        where = f"flow_execution_id = '{flow_id}'"
        total, distinct = map(
            int,
            deployment.psql(
                f"SELECT count(*), count(DISTINCT id) FROM task_outputs_taskoutput WHERE {where}", capture=True
            ).split("|"),
        )
        stored = set(deployment.psql(f"SELECT id FROM task_outputs_taskoutput WHERE {where}", capture=True).split())
        log_tail = serve.output()[-2000:]

    creates = soak.creates
    acknowledged = creates.acknowledged
    lost, extra = acknowledged - stored, stored - acknowledged
    create_seconds = creates.finished - creates.started
    processes = []
    for pid in soak.pids:
        warm, end = soak.rss_warmup.get(pid), rss_end.get(pid)
        growth = (end - warm) / warm if warm and end else None
        cpu = cpu_end.get(pid), soak.cpu_start.get(pid)
        processes.append(
            {
                "pid": pid,
                "rss_warmup_mib": round(warm / 1024, 1) if warm else None,
                "rss_end_mib": round(end / 1024, 1) if end else None,
                "rss_peak_mib": round(soak.rss_peak[pid] / 1024, 1),
                "rss_growth_pct": round(growth * 100, 1) if growth is not None else None,
                "cpu_seconds": round(cpu[0] - cpu[1], 1) if None not in cpu else None,
                "malloc_arena_max": soak.arena_max[pid],  # from supervisord.conf's environment
                "within_tolerance": growth is not None and growth <= RSS_TOLERANCE,
            }
        )
    clients = [
        {
            "client": watcher.number,
            "feed": "flow" if watcher.path != SUMMARIES else "summaries",
            "connections": watcher.connections,
            "messages": watcher.messages,
            "duplicates": watcher.duplicates,
            "resyncs": watcher.resyncs,
            "errors": dict(watcher.errors),
            "missing": len(acknowledged - watcher.seen),
            "sessions_before_resumed": watcher.unresumed,
            **resumes(watcher, create_seconds),
        }
        for watcher in soak.watchers
    ]
    checks = {
        "every create acknowledged, none rejected": len(acknowledged) == config.creates and not creates.rejected,
        "stored ids = acknowledged ids (none lost, none extra)": not lost and not extra,
        "each id stored once (count = count distinct = creates)": total == distinct == config.creates,
        "every WebSocket client saw every acknowledged id": all(client["missing"] == 0 for client in clients),
        "no daphne process restarted": pids_end == soak.pids,
        f"end RSS within {RSS_TOLERANCE:.0%} of RSS after warm-up": all(p["within_tolerance"] for p in processes),
    }
    errors_by_status = {str(status): n for status, n in sorted(creates.statuses.items()) if status not in (200, 201)}
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "config": {
            "creates": config.creates,
            "workers": config.workers,
            "websockets": config.websockets,
            "processes": config.processes,
            "warmup_creates": config.warmup_creates,
            "postgres": config.postgres or "private",
            "redis": "given" if config.redis_url else "private",
            "client_lifetime_s": [MIN_LIFETIME, MAX_LIFETIME],
        },
        "machine": {
            "cores": os.cpu_count(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "creates": {
            "acknowledged": len(acknowledged),
            "create_seconds": round(create_seconds, 1),
            "creates_per_s": round(len(acknowledged) / create_seconds, 1) if create_seconds else None,
            "latency_p50_ms": round(percentile(creates.latencies, 0.5) * 1000, 1) if creates.latencies else None,
            "latency_p99_ms": round(percentile(creates.latencies, 0.99) * 1000, 1) if creates.latencies else None,
            "latency_max_ms": round(max(creates.latencies) * 1000, 1) if creates.latencies else None,
            "answers": {str(status): n for status, n in sorted(creates.statuses.items())},
            "replays_200": creates.statuses.get(200, 0),
            "errors": {"transport": dict(creates.transport), "status": errors_by_status},
            "retried_ids": creates.retried_ids,
            "rejected": dict(list(creates.rejected.items())[:10]),
            "rejected_count": len(creates.rejected),
        },
        "database": {
            "stored": total,
            "distinct": distinct,
            "lost": len(lost),
            "extra": len(extra),
            "lost_sample": sorted(lost)[:10],
            "extra_sample": sorted(extra)[:10],
        },
        "processes": processes,
        "websockets": {
            "clients": len(clients),
            "connections": sum(c["connections"] for c in clients),
            "messages": sum(c["messages"] for c in clients),
            "duplicates": sum(c["duplicates"] for c in clients),
            "resyncs": sum(c["resyncs"] for c in clients),
            "errors": dict(sum((Counter(c["errors"]) for c in clients), Counter())),
            "missing_total": sum(c["missing"] for c in clients),
            "sessions_before_resumed": sum(c["sessions_before_resumed"] for c in clients),
            "resume_to_resumed": spread([s for watcher in soak.watchers for s in watcher.resume_seconds]),
            "longest_without_resumed_max_s": max((c["longest_without_resumed_s"] for c in clients), default=None),
            "final_resume_seconds": round(soak.final_resume_seconds, 1),
            "client_cpu_seconds": round(soak.client_cpu_seconds, 1),  # this process's, during the creates
            "per_client": clients,
        },
        "checks": checks,
        "passed": all(checks.values()),
        "server_log_tail": log_tail if not all(checks.values()) else "",
        "total_seconds": round(time.monotonic() - started, 1),
    }


def seconds(spread: dict[str, float | None]) -> str:
    if spread["p50_s"] is None:
        return "-"
    return f"{spread['p50_s']} / {spread['p90_s']} / {spread['max_s']} s"


def markdown(report: dict) -> str:
    creates, ws, config = report["creates"], report["websockets"], report["config"]
    transport = ", ".join(f"{kind} {n}" for kind, n in creates["errors"]["transport"].items()) or "0"
    statuses = ", ".join(f"{status}: {n}" for status, n in creates["errors"]["status"].items()) or "0"
    missing = [c["missing"] for c in ws["per_client"]]
    lines = [
        f"Soak of {report['date']}: {config['creates']:,} creates from {config['workers']} workers, "
        f"{config['websockets']} WebSocket clients, `make serve` with {config['processes']} processes; "
        f"{report['machine']['cores']} cores, load average {report['machine']['load_before'][0]} before, "
        f"{report['machine']['load_after'][0]} after.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| duration (whole run / creates / last resumes) | {report['total_seconds']:,.1f} s / "
        f"{creates['create_seconds']:,.1f} s / {ws['final_resume_seconds']:,.1f} s |",
        f"| throughput | {creates['creates_per_s']:,.1f} acknowledged creates/s |",
        f"| create latency p50 / p99 / max | {creates['latency_p50_ms']} / {creates['latency_p99_ms']} / "
        f"{creates['latency_max_ms']} ms |",
        f"| acknowledged (201 / 200 replay) | {creates['acknowledged']:,} ({creates['answers'].get('201', 0):,} / "
        f"{creates['replays_200']:,}) |",
        f"| errors: transport | {transport} |",
        f"| errors: HTTP status | {statuses} |",
        f"| ids retried / rejected | {creates['retried_ids']:,} / {creates['rejected_count']} |",
        f"| stored rows / distinct ids | {report['database']['stored']:,} / {report['database']['distinct']:,} |",
        f"| lost ids / extra ids | {report['database']['lost']} / {report['database']['extra']} |",
        f"| WebSocket connections / task-output messages / duplicates | {ws['connections']:,} / "
        f"{ws['messages']:,} / {ws['duplicates']:,} |",
        f"| WebSocket resync_required / errors | {ws['resyncs']} / "
        f"{', '.join(f'{k} {v}' for k, v in ws['errors'].items()) or '0'} |",
        f"| missing ids per client (max / total) | {max(missing, default=0)} / {ws['missing_total']} |",
        f"| connections that ended before `resumed` | {ws['sessions_before_resumed']:,} of {ws['connections']:,} |",
        f"| `resume` → `resumed` p50 / p90 / max | {seconds(ws['resume_to_resumed'])} |",
        f"| longest a client went without `resumed` during the creates | {ws['longest_without_resumed_max_s']} s |",
        f"| CPU of this load generator during the creates | {ws['client_cpu_seconds']} s |",
    ]
    for process in report["processes"]:
        lines.append(
            f"| daphne {process['pid']}: RSS after warm-up → end (peak) | {process['rss_warmup_mib']} → "
            f"{process['rss_end_mib']} MiB ({process['rss_peak_mib']}), {process['rss_growth_pct']:+}%; "
            f"CPU {process['cpu_seconds']} s; MALLOC_ARENA_MAX {process['malloc_arena_max'] or 'unset'} |"
        )
    lines += [
        "",
        "| client | feed | connections | ended before `resumed` | `resume` → `resumed` p50 / p90 / max "
        "| last `resumed` (s into the creates, creates acknowledged) | longest without `resumed` | resyncs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for client in ws["per_client"]:
        last = (
            f"{client['last_resumed_s']} s, {client['last_resumed_creates']:,}"
            if client["last_resumed_s"] is not None
            else "never"
        )
        lines.append(
            f"| {client['client']} | {client['feed']} | {client['connections']} | {client['sessions_before_resumed']} "
            f"| {seconds(client['resume_to_resumed'])} | {last} | {client['longest_without_resumed_s']} s "
            f"| {client['resyncs']} |"
        )
    lines += ["", "| check | result |", "|---|---|"]
    lines += [f"| {name} | {'pass' if ok else '**FAIL**'} |" for name, ok in report["checks"].items()]
    return "\n".join(lines)


def raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--creates", type=int, default=20_000, help="task outputs to create (default 20000)")
    parser.add_argument("--workers", type=int, default=16, help="concurrent HTTP workers (default 16)")
    parser.add_argument("--websockets", type=int, default=50, help="WebSocket clients (default 50)")
    parser.add_argument("--processes", type=int, default=2, help="make serve's WEB_CONCURRENCY (default 2)")
    parser.add_argument("--warmup", type=int, help="creates before the warm-up RSS (default 10%% of --creates)")
    parser.add_argument("--postgres", metavar="HOST:PORT", help="an existing PostgreSQL (default: a private one)")
    parser.add_argument("--redis-url", help="an existing Redis (default: a private redis-server)")
    parser.add_argument("--seed", type=int, help="seed of the clients' random lifetimes and backoffs")
    args = parser.parse_args()
    if min(args.creates, args.workers, args.processes) < 1 or args.websockets < 0:
        parser.error("--creates, --workers and --processes must be at least 1, --websockets not negative")
    if args.warmup is not None and not 1 <= args.warmup <= args.creates:
        parser.error("--warmup must be between 1 and --creates")
    if args.processes > 1 and os.cpu_count() and os.cpu_count() < 2:
        say("WARNING: one core: the processes and this client share it")
    signal.signal(signal.SIGTERM, raise_interrupt)
    config = Config(
        creates=args.creates,
        workers=args.workers,
        websockets=args.websockets,
        processes=args.processes,
        warmup=args.warmup,
        postgres=args.postgres,
        redis_url=args.redis_url,
        seed=args.seed,
    )
    report = run(config)
    print(json.dumps(report, indent=2))
    print()
    print(markdown(report))
    for name, ok in report["checks"].items():
        say(f"  {'pass' if ok else 'FAIL'}: {name}")
    sys.exit(0 if report["passed"] else 1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        say("Interrupted: the servers are stopped and their temporary files deleted.")
        sys.exit(130)
