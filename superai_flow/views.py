"""Project-level pages: the front page, and the health endpoints for load balancers and orchestrators.

`GET /healthz` says the process is alive and touches nothing else; `GET /readyz` says it can serve
traffic: it checks the database and the channel layer, each within READINESS_CHECK_TIMEOUT_SECONDS, so
that a hung dependency answers 503 quickly instead of holding the probe. Neither needs credentials, is
rate limited (they are not API views) or is logged per request: a readiness check that starts or stops
failing is logged once, when it changes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from superai_flow.notifications import get_dispatcher
from superai_flow.tenancy import outside_tenant_scope

logger = logging.getLogger(__name__)

# The longest /readyz waits for each check (they run at the same time): past it the check has failed.
READINESS_CHECK_TIMEOUT_SECONDS = 2.0


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


@outside_tenant_scope
@require_GET
@never_cache
def health(request: HttpRequest) -> JsonResponse:
    """Liveness: 200 while the process serves requests. No database, no Redis: a dependency's outage
    must not get live processes restarted (that is /readyz's business: taking them out of rotation)."""
    return JsonResponse({"status": "ok"})


@outside_tenant_scope
@require_GET
@never_cache
def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the database and the channel layer answer, 503 otherwise, with each check's
    outcome and duration, and this process's notification counters (queued, sent, retried, dropped)."""
    deadline = time.monotonic() + READINESS_CHECK_TIMEOUT_SECONDS
    started = {name: (check.start(), time.perf_counter()) for name, check in READINESS_CHECKS.items()}
    checks = {name: READINESS_CHECKS[name].outcome(run, since, deadline) for name, (run, since) in started.items()}
    passing = all(check["ok"] for check in checks.values())
    body = {
        "status": "ok" if passing else "unavailable",
        "checks": checks,
        "notifications": get_dispatcher().snapshot(),
    }
    response = JsonResponse(body, status=200 if passing else 503)
    # Django would log every 503 at ERROR ("Service Unavailable: /readyz"), once per probe for as long
    # as a dependency is down; the checks log their changes themselves.
    response._has_been_logged = True
    return response


# --- Readiness checks -------------------------------------------------------------------------------


def check_database() -> None:
    """One round trip to the database, on this thread's own connection, given back at once."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()  # back to the pool (PostgreSQL) or closed (SQLite): nothing stays open


def check_channel_layer() -> None:
    """A round trip to the channel layer's Redis (every shard); the in-memory layer is always ready.

    channels-redis keeps one set of connections per event loop and closes them when that loop closes:
    the check runs on a loop of its own, which asyncio.run closes at the end, so each check opens its
    connections and closes them again, and none is left behind.
    """
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        return
    asyncio.run(asyncio.wait_for(_channel_layer_round_trip(layer), READINESS_CHECK_TIMEOUT_SECONDS))


async def _channel_layer_round_trip(layer) -> None:
    if isinstance(layer, RedisPubSubChannelLayer):
        # PING through each shard's own client, the one group_send publishes with (its address, timeouts, TLS).
        for shard in layer._get_layer()._shards:
            async with shard._lock:
                shard._ensure_redis()
                await shard._redis.ping()
        return
    # Any other layer: a message to a channel of our own, and back.
    channel = await layer.new_channel("readyz.")
    await layer.send(channel, {"type": "readyz.probe"})
    await layer.receive(channel)


class ReadinessCheck:
    """Runs `probe` on a daemon thread of its own, one run at a time.

    A request waits for the run until its deadline and no longer, so a hung dependency cannot hold the
    probe. While a run is still going (stuck on a dead connection, say), later requests wait for that
    same run rather than starting more, so a hung dependency ties up one thread per process, not one
    per request. Its outcome is logged when it changes (ok, or which failure), never per request.
    """

    def __init__(self, name: str, probe: Callable[[], None]):
        self.name = name
        self.probe = probe
        self._lock = threading.Lock()
        self._run: Future | None = None
        self._last_error: str | None = None

    def start(self) -> Future:
        """The run to wait for: the one still going, else a new one."""
        with self._lock:
            if self._run is None or self._run.done():
                self._run = Future()
                thread = threading.Thread(target=self._execute, args=(self._run,), name=f"readyz-{self.name}")
                thread.daemon = True  # a hung check must not keep the process from exiting
                thread.start()
            return self._run

    def _execute(self, run: Future) -> None:
        started = time.perf_counter()
        try:
            self.probe()
        except BaseException as exc:  # whatever happens, the run ends: later requests wait for it
            run.set_result((time.perf_counter() - started, exc))
        else:
            run.set_result((time.perf_counter() - started, None))

    def outcome(self, run: Future, since: float, deadline: float) -> dict[str, object]:
        """{"ok", "ms"} and, on failure, a short "error": the timeout, or the exception's type (its
        message, which may name hosts and users, goes to the log only)."""
        timed_out = f"no answer within {READINESS_CHECK_TIMEOUT_SECONDS:g} s"
        try:
            seconds, exc = run.result(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:  # the run goes on; the next request waits for it
            seconds, error, detail = time.perf_counter() - since, timed_out, "timed out"
        else:
            if exc is None:
                error = detail = None
            elif isinstance(exc, TimeoutError):  # the probe's own timeout (the channel layer's)
                error, detail = timed_out, "timed out"
            else:
                error, detail = type(exc).__name__, f"{type(exc).__name__}: {exc}"
        self._log_change(error, detail)
        result: dict[str, object] = {"ok": error is None, "ms": round(seconds * 1000, 1)}
        if error is not None:
            result["error"] = error
        return result

    def _log_change(self, error: str | None, detail: str | None) -> None:
        with self._lock:
            previous, self._last_error = self._last_error, error
        if error == previous:
            return
        if error is None:
            logger.info("Readiness check %s passes again", self.name)
        else:
            logger.warning("Readiness check %s fails: %s", self.name, detail)


READINESS_CHECKS = {
    "database": ReadinessCheck("database", check_database),
    "channel_layer": ReadinessCheck("channel_layer", check_channel_layer),
}
