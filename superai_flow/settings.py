"""Django settings for SuperAI Flow, read from the environment.

With no configuration the service runs on a SQLite file and the in-memory channel layer.
Set DATABASE_URL (PostgreSQL) and REDIS_URL for the real deployment. docs/configuration.md
lists every variable.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from superai_flow.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
# Runtime state of the embedded default (SQLite file, generated secret key, collected static files).
VAR_DIR = Path(env_str("SUPERAI_FLOW_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in VAR_DIR (never a shared default)."""
    key = env_str("SECRET_KEY")
    if key is not None:
        if len(key) < 32:
            raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long.")
        return key
    path = VAR_DIR / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    key = secrets.token_urlsafe(50)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- Serving over HTTPS (production; docs/security.md) ---------------------------------------------
HTTPS = env_bool("HTTPS", False)  # set when users reach the service over https:// only
SECURE_SSL_REDIRECT = HTTPS
# Load balancers probe, and Prometheus scrapes (loopback or METRICS_TOKEN), over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
if env_bool("TRUST_X_FORWARDED_PROTO", False):  # only behind a proxy that sets the header itself
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 0, minimum=0)  # a flag: browsers remember it
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", False)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # no script reads it: forms carry the token

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "superai_flow.organizations",
    "flow_executions",
    "task_outputs",
]

MIDDLEWARE = [
    "superai_flow.metrics.MetricsMiddleware",  # outermost: its latency covers the whole chain
    "superai_flow.request_id.RequestIDMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "superai_flow.tenancy.TenantScopeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "superai_flow.urls"
ASGI_APPLICATION = "superai_flow.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
try:
    _database = dj_database_url.parse(DATABASE_URL)
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL Django understands: {exc}") from None

if _database["ENGINE"] == "django.db.backends.postgresql":
    # Django's psycopg 3 pool replaces persistent connections: each request borrows a connection and
    # returns it. Connections that died (a database restart) are replaced before they are used, by a
    # check that costs no round trip (superai_flow/postgresql/base.py) instead of CONN_HEALTH_CHECKS' query.
    _database["ENGINE"] = "superai_flow.postgresql"
    _database["CONN_MAX_AGE"] = 0
    _database["CONN_HEALTH_CHECKS"] = False
    _database.setdefault("OPTIONS", {}).update(
        {
            "connect_timeout": env_int("DB_CONNECT_TIMEOUT", 5, minimum=1),
            # Parameters travel apart from the SQL, and a statement run twice on a connection is prepared
            # by the server, so PostgreSQL parses and plans it once: 30% less database CPU per create
            # (docs/performance.md). 0 turns preparing off (e.g. behind PgBouncer before 1.21).
            "server_side_binding": True,
            "prepare_threshold": env_int("DB_PREPARE_THRESHOLD", 2, minimum=0) or None,
            "pool": {
                "min_size": env_int("DB_POOL_MIN_SIZE", 2, minimum=0),
                "max_size": env_int("DB_POOL_MAX_SIZE", 20, minimum=1),
                "timeout": env_int("DB_POOL_TIMEOUT", 5, minimum=1),
            },
        }
    )
elif _database["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the writer; IMMEDIATE takes the write lock when a transaction
    # starts, so concurrent writers wait (up to `timeout` seconds) instead of failing mid-transaction.
    _database.setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    # A file, not memory, so that the server processes that end-to-end tests start can share it.
    _database["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://...) or SQLite (sqlite:///...).")

DATABASES = {"default": _database}
# The garbage collector of server processes (superai_flow/handlers.py, settle_garbage_collector).
GC_FREEZE = env_bool("GC_FREEZE", True)
GC_THRESHOLD_0 = env_int("GC_THRESHOLD_0", 10_000, minimum=100)
# Worker threads per server process that run requests' middleware and views (superai_flow/handlers.py).
# Few: request work is CPU-bound, and every extra thread competes with the event loop (WebSockets, the
# notification dispatcher, reading and writing HTTP) for the interpreter lock. docs/performance.md.
SERVER_THREADS = env_int("SERVER_THREADS", 1, minimum=1)
# On SIGTERM a server process stops accepting connections and waits up to this long for the requests
# it is answering before it closes the rest (superai_flow.handlers.drain_before_shutdown). Keep it
# under the process manager's stop timeout (supervisord.conf's stopwaitsecs: 20).
SERVER_DRAIN_SECONDS = env_int("SERVER_DRAIN_SECONDS", 15, minimum=0)
# Migrations run as the role that owns the tables; the service runs as one that does not (row-level
# security holds even for owners here, but only a non-owner cannot switch it off). See docs/security.md.
DATABASE_MIGRATION_URL = env_str("DATABASE_MIGRATION_URL") or None
if DATABASE_MIGRATION_URL:
    DATABASES["owner"] = {**dj_database_url.parse(DATABASE_MIGRATION_URL), "TEST": {"MIRROR": "default"}}
# The role that migrations grant table privileges to (default: DATABASE_URL's user).
DATABASE_RUNTIME_ROLE = env_str("DATABASE_RUNTIME_ROLE") or None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels and live updates -------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL") or None
if REDIS_URL:
    # Redis pub/sub: a group message is published once and fanned out inside each server process,
    # whatever the number of watchers. Delivery is at most once; clients resume from cursors.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "superai_flow.channel_layer.BatchingRedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_connect_timeout": 2, "socket_keepalive": True}],
                "prefix": env_str("CHANNEL_LAYER_PREFIX", "superai_flow"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# The cache holds rate-limit counters: shared by every process through Redis, else per process.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CHANNEL_LAYER_PREFIX", "superai_flow"),
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The background dispatcher of notifications (superai_flow.notifications).
NOTIFY_MAX_QUEUE = env_int("NOTIFY_MAX_QUEUE", 10_000, minimum=1)
NOTIFY_SEND_TIMEOUT_SECONDS = env_int("NOTIFY_SEND_TIMEOUT_SECONDS", 2, minimum=1)
NOTIFY_MAX_AGE_SECONDS = env_int("NOTIFY_MAX_AGE_SECONDS", 10, minimum=1)
NOTIFY_DRAIN_SECONDS = env_int("NOTIFY_DRAIN_SECONDS", 5, minimum=0)
NOTIFY_BATCH_INTERVAL_MS = env_int("NOTIFY_BATCH_INTERVAL_MS", 5, minimum=0)
# How far back the cursors of live messages reach (task_outputs.live): the longest a message may take
# to arrive (queued for NOTIFY_MAX_AGE_SECONDS, then one last attempt of NOTIFY_SEND_TIMEOUT_SECONDS),
# plus 3 s for the write's commit and clock differences between servers. Every resume replays this much.
LIVE_CURSOR_GRACE_SECONDS = env_int(
    "LIVE_CURSOR_GRACE_SECONDS", NOTIFY_MAX_AGE_SECONDS + NOTIFY_SEND_TIMEOUT_SECONDS + 3, minimum=0
)
# Every WebSocket gets {"type": "heartbeat"} this often, so that idle proxies keep it open.
WS_HEARTBEAT_SECONDS = env_int("WS_HEARTBEAT_SECONDS", 25, minimum=1)
# Every Server-Sent Events stream gets a `: heartbeat` comment this often (the contract: at least every 15 s).
SSE_HEARTBEAT_SECONDS = env_int("SSE_HEARTBEAT_SECONDS", 15, minimum=1, maximum=15)
# A resume that would replay more task outputs than this gets {"type": "resync_required"} instead.
WS_MAX_REPLAY = env_int("WS_MAX_REPLAY", 10_000, minimum=1)
# Each feed's cache of replayed texts, per process (task_outputs.live.ReplayTexts), in MiB of text.
WS_REPLAY_CACHE_MB = env_int("WS_REPLAY_CACHE_MB", 4, minimum=0)
# How often each process checks the credentials of its open WebSockets (superai_flow.credential_watch):
# a revoked key or a removed member loses their feeds within this, and the contract allows 5 s.
WS_CREDENTIAL_CHECK_SECONDS = env_int("WS_CREDENTIAL_CHECK_SECONDS", 2, minimum=1, maximum=4)

# --- Metrics (GET /metrics, superai_flow.metrics; docs/operations.md) -----------------------------
# A bearer token that opens /metrics to scrapers off this machine; unset: loopback clients only.
METRICS_TOKEN = env_str("METRICS_TOKEN") or None
if METRICS_TOKEN is not None and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters long.")
# Loopback clients need no token. Turn off behind a reverse proxy on the same machine, whose requests
# all come from loopback.
METRICS_ALLOW_LOOPBACK = env_bool("METRICS_ALLOW_LOOPBACK", True)
# How often each process samples its gauges (notification queue, database pool).
METRICS_SAMPLE_SECONDS = env_int("METRICS_SAMPLE_SECONDS", 1, minimum=1, maximum=60)

# --- Auth, i18n, static ---------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/executions/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Files are found through the static finders at start-up, so `collectstatic` is optional.
WHITENOISE_USE_FINDERS = True

# --- REST API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "superai_flow.authentication.APIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "superai_flow.authentication.KeyScopePermission",
    ],
    "DEFAULT_RENDERER_CLASSES": ["superai_flow.rendering.SafeJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["superai_flow.parsers.StrictJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "superai_flow.rendering.JSONOnlyNegotiation",
    "DEFAULT_FILTER_BACKENDS": ["superai_flow.filters.StrictFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "superai_flow.pagination.KeysetPagination",
    "DEFAULT_THROTTLE_CLASSES": ["superai_flow.throttling.APIKeyRateThrottle"],
    "EXCEPTION_HANDLER": "superai_flow.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "SuperAI Flow API",
    "DESCRIPTION": "Record the results of workflow tasks and watch them live. Errors always come as the "
    "`ErrorEnvelope`; list filters and live cursors are described in docs/api.md and docs/live-updates.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "superai_flow.openapi.closed_request_bodies",
        "superai_flow.openapi.event_stream",
    ],
    "ENUM_NAME_OVERRIDES": {
        "Status": "flow_executions.lifecycle.Status",
        "CreatableStatus": "flow_executions.lifecycle.CREATABLE_STATUSES",
    },
}

# Limits on what a client may send (docs/api.md explains each).
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1024)
API_MAX_JSON_DEPTH = env_int("API_MAX_JSON_DEPTH", 64, minimum=2)
API_MAX_SUMMARY_BYTES = env_int("API_MAX_SUMMARY_BYTES", 64 * 1024, minimum=64)
# Requests per API key (or signed-in user): "<n>/<second|minute|hour|day>"; empty disables the limit.
API_RATE_LIMIT = env_str("API_RATE_LIMIT", "6000/minute")
API_DEFAULT_PAGE_SIZE = 50
API_MAX_PAGE_SIZE = 500
# Exports streaming at once per process (each holds a database connection and a thread while it streams).
EXPORTS_AT_ONCE = env_int("EXPORTS_AT_ONCE", 2, minimum=1)
# How far in the future a client-supplied created_at may lie (clock skew between workers and us).
API_CREATED_AT_MAX_SKEW_SECONDS = 300
# An API key's last_used_at is written at most this often, so reads do not turn into writes.
API_KEY_LAST_USED_RESOLUTION_SECONDS = 60
# How long a process trusts an API key it found valid without looking it up again (0: look up every
# request). The contract lets a revoked key work for at most 5 s, so more is refused.
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 5, minimum=0, maximum=5)

# --- Logging ------------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "superai_flow.request_id.RequestIDLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO").upper()},
    "loggers": {
        # 4xx answers are the client's business; server errors are still logged.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
    },
}
