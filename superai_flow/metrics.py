"""`GET /metrics`: Prometheus metrics of the whole service, whichever server process answers.

Built on prometheus_client. Under `make serve` (several daphne processes on one address) the library's
multiprocess mode is on: PROMETHEUS_MULTIPROC_DIR names a directory that `make serve` empties before the
processes start and that they all share; each process writes its values to memory-mapped files there,
and a scrape, answered by any process, adds up every process's files. Counters and histograms of a
process that died stay in the sum (totals never go backwards when supervisord restarts one); gauges are
`livesum`, so a dead process's share vanishes: a process removes its own gauge file when it exits, and
each scrape removes those of processes that are gone without doing so (SIGKILL). Without the variable
(`make run`, tests) the metrics live in this process's memory, which then is the whole service.

What is counted, and where (docs/operations.md, "Metrics", lists the series):

- HTTP requests by route, method and status, with a latency histogram: `MetricsMiddleware`, the
  outermost middleware, so the time covers the whole middleware chain and the view.
- Task outputs created: task_outputs/signals.py, when the creating transaction commits.
- WebSocket clients connected: task_outputs/consumers.py, from an opened feed to its disconnection.
- Notifications sent, retried, dropped: superai_flow/notifications.py, where its own counters count.
- The notification queue's depth and the database pool's gauges are sampled by a thread of each process
  every METRICS_SAMPLE_SECONDS, and once more by the process that answers a scrape, so that they are
  current in every process even when it serves no request.

Access: clients on the loopback address (unless METRICS_ALLOW_LOOPBACK is off) and, when METRICS_TOKEN is
set, `Authorization: Bearer <METRICS_TOKEN>`; anyone else gets 403 in the error envelope.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import hmac
import ipaddress
import logging
import os
import re
import threading
import time
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

# prometheus_client decides at import whether it is in multiprocess mode: from whether the variable
# exists at all. An empty one means unset here, as for the service's own settings.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR") == "":
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]
MULTIPROCESS_DIR: str | None = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if MULTIPROCESS_DIR is not None and not os.path.isdir(MULTIPROCESS_DIR):
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR={MULTIPROCESS_DIR!r} is not a directory: create it (empty) before the server "
        "processes start, or unset it to keep metrics per process (docs/operations.md, Metrics)."
    )

from prometheus_client import (  # noqa: E402 (after the check above)
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead  # noqa: E402

from superai_flow.errors import error_payload  # noqa: E402
from superai_flow.tenancy import outside_tenant_scope  # noqa: E402

logger = logging.getLogger(__name__)

# The `<name>_created` timestamp series: noise here, and multiprocess mode has none, so neither mode does.
disable_created_metrics()

# This process's metrics. In multiprocess mode what /metrics shows is read from the shared directory.
REGISTRY = CollectorRegistry(auto_describe=True)

# Finer around the <100 ms target of the API; a create takes a few milliseconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)

HTTP_REQUESTS = Counter(
    "superai_flow_http_requests",
    "HTTP requests answered, by route (URL pattern), method and status code.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_REQUEST_DURATION = Histogram(
    "superai_flow_http_request_duration_seconds",
    "Time from entering the middleware chain to the response leaving it (the view included), by route and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
TASK_OUTPUTS_CREATED = Counter(
    "superai_flow_task_outputs_created",
    "Task outputs created (committed), through the API or otherwise.",
    registry=REGISTRY,
)
LIVE_CLIENTS = Gauge(
    "superai_flow_live_clients",
    "Clients connected to a live feed, by transport.",
    ["transport"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
NOTIFICATIONS_SENT = Counter(
    "superai_flow_notifications_sent", "Live notifications handed to the channel layer.", registry=REGISTRY
)
NOTIFICATIONS_RETRIED = Counter(
    "superai_flow_notifications_retried",
    "Live notifications sent again after a failed attempt (one per notification and retry).",
    registry=REGISTRY,
)
NOTIFICATIONS_DROPPED = Counter(
    "superai_flow_notifications_dropped",
    "Live notifications given up on: queue full, too old to retry, or dispatcher unavailable.",
    registry=REGISTRY,
)
NOTIFICATIONS_QUEUED = Gauge(
    "superai_flow_notifications_queued",
    "Live notifications waiting in the dispatchers' queues (sampled every METRICS_SAMPLE_SECONDS).",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
DB_POOL_IN_USE = Gauge(
    "superai_flow_db_pool_connections_in_use",
    "Pooled database connections lent out (PostgreSQL; sampled every METRICS_SAMPLE_SECONDS).",
    ["database"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
DB_POOL_OPEN = Gauge(
    "superai_flow_db_pool_connections_open",
    "Database connections the pools hold open, lent out or idle.",
    ["database"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
DB_POOL_MAX = Gauge(
    "superai_flow_db_pool_connections_max",
    "The most connections the pools may open (DB_POOL_MAX_SIZE times the processes).",
    ["database"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
DB_POOL_WAITING = Gauge(
    "superai_flow_db_pool_requests_waiting",
    "Requests waiting for a pooled database connection.",
    ["database"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
SERVER_PROCESSES = Gauge(
    "superai_flow_server_processes",
    "Server processes whose metrics the scrape adds up.",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)

WEBSOCKET_CLIENTS = LIVE_CLIENTS.labels("websocket")
EVENT_STREAM_CLIENTS = LIVE_CLIENTS.labels("sse")

# --- Counting requests ------------------------------------------------------------------------------

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A named group of a regex route, one level of nested parentheses allowed: (?P<pk>[^/.]+)
_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


@cache  # one entry per URL pattern: bounded by the URLconf
def route_label(route: str) -> str:
    """A URL pattern as a readable label: `/api/v1/task-outputs/{pk}`, `/executions/{pk}/`, `/healthz`.

    Django gives `path()` patterns as written (`executions/<uuid:pk>/`) and regex ones as regexes (the
    API router's `api/v1/task-outputs/(?P<pk>[^/.]+)/?$`); parameters become `{name}` and the router's
    optional trailing slash goes, so one endpoint is one label, never one per id.
    """
    label = _CONVERTER.sub(r"{\1}", _REGEX_GROUP.sub(r"{\1}", route))
    return "/" + label.replace("/?", "").removeprefix("^").removesuffix("$")


class MetricsMiddleware:
    """Counts every request by route, method and status, and observes its latency.

    Sync, like the rest of the chain (superai_flow/handlers.py runs it on a worker thread), and kept
    cheap: two clock reads, a dict look-up for the series (the label handling of prometheus_client is
    done once per route, method and status), a counter and a histogram. docs/operations.md has its cost.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self._series: dict[tuple, tuple] = {}
        start_sampler()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        match = request.resolver_match
        method = request.method if request.method in _METHODS else "other"  # clients may send any word
        key = (match.route if match is not None else None, method, response.status_code)
        series = self._series.get(key)
        if series is None:
            series = self._series.setdefault(key, self._new_series(request, *key))
        series[0].inc()
        series[1].observe(elapsed)
        return response

    @staticmethod
    def _new_series(request: HttpRequest, route: str | None, method: str, status: int) -> tuple:
        if route is not None:
            label = route_label(route)
        elif request.path.startswith(settings.STATIC_URL):
            label = "static"  # WhiteNoise answers before URLs are resolved
        else:
            label = "unmatched"  # no URL pattern (404), or a middleware answered first (a redirect, say)
        return HTTP_REQUESTS.labels(label, method, str(status)), HTTP_REQUEST_DURATION.labels(label, method)


# --- Gauges sampled in each process -----------------------------------------------------------------

_sampler_lock = threading.Lock()
_sampler: threading.Thread | None = None


def start_sampler() -> None:
    """Start this process's sampling thread (once), and count the process."""
    global _sampler
    with _sampler_lock:
        if _sampler is not None:
            return
        SERVER_PROCESSES.set(1)
        if MULTIPROCESS_DIR is not None:
            atexit.register(_forget_this_process)
        _sampler = threading.Thread(target=_sample_forever, name="metrics-sampler", daemon=True)
        _sampler.start()


def _sample_forever() -> None:
    failing = False
    while True:
        time.sleep(settings.METRICS_SAMPLE_SECONDS)
        try:
            sample()
        except Exception:
            if not failing:  # once, not every second for as long as it lasts
                logger.exception("Sampling the metrics' gauges failed")
            failing = True
        else:
            failing = False


def sample() -> None:
    """Set this process's gauges: the notification queue's depth and each database pool's figures.

    A pool that does not exist (SQLite; PostgreSQL before the first query) exports nothing.
    """
    from superai_flow.notifications import get_dispatcher

    NOTIFICATIONS_QUEUED.set(get_dispatcher().snapshot()["queued"])
    for alias in connections:
        # Django's pools live on the backend class, by alias; `.pool` would create one, this only looks.
        pool = getattr(connections[alias], "_connection_pools", {}).get(alias)
        if pool is None:
            continue
        stats = pool.get_stats()
        size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
        DB_POOL_IN_USE.labels(alias).set(max(0, size - available))
        DB_POOL_OPEN.labels(alias).set(size)
        DB_POOL_MAX.labels(alias).set(stats.get("pool_max", 0))
        DB_POOL_WAITING.labels(alias).set(stats.get("requests_waiting", 0))


# --- Processes that are gone (multiprocess mode) ----------------------------------------------------


def _forget_this_process() -> None:
    """At exit: this process's gauges leave the sums (its counters stay)."""
    forget_process(os.getpid())


def forget_process(pid: int) -> None:
    """prometheus_client's mark_process_dead, safe when another process does the same at the same time."""
    for _ in range(3):
        try:
            mark_process_dead(pid, MULTIPROCESS_DIR)
            return
        except FileNotFoundError:  # removed by another process between its glob and its remove
            continue


def forget_dead_processes() -> None:
    """Remove the gauge files of processes that died without removing them (SIGKILL, a crash)."""
    pids = set()
    for path in glob.glob(os.path.join(MULTIPROCESS_DIR, "gauge_live*_*.db")):
        with contextlib.suppress(ValueError):
            pids.add(int(os.path.basename(path).rsplit("_", 1)[1].removesuffix(".db")))
    for pid in pids - {os.getpid()}:
        if not _alive(pid):
            forget_process(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, someone else's
        return True
    return True


# --- The endpoint -----------------------------------------------------------------------------------


def _loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _bearer_token_matches(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return False
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(supplied.strip().encode(), token.encode())


def allowed(request: HttpRequest) -> bool:
    """From loopback (METRICS_ALLOW_LOOPBACK), or with the METRICS_TOKEN bearer token when one is set."""
    if settings.METRICS_ALLOW_LOOPBACK and _loopback(request.META.get("REMOTE_ADDR")):
        return True
    return _bearer_token_matches(request)


@outside_tenant_scope
@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """The metrics in Prometheus' text format (OpenMetrics when the scraper asks for it)."""
    if not allowed(request):
        message = "Metrics are served to the loopback address, or with the METRICS_TOKEN bearer token."
        return JsonResponse(error_payload("permission_denied", message), status=403)
    sample()
    if MULTIPROCESS_DIR is not None:
        forget_dead_processes()
        registry = CollectorRegistry()
        MultiProcessCollector(registry, MULTIPROCESS_DIR)
    else:
        registry = REGISTRY
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(registry), content_type=content_type)
