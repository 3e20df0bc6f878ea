"""Settings come from the environment; bad values fail loudly at start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SNIPPET = """
import json
from superai_flow import settings as s
db = s.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "name": str(db["NAME"]), "conn_max_age": db.get("CONN_MAX_AGE"),
    "health_checks": db.get("CONN_HEALTH_CHECKS"), "pool": db.get("OPTIONS", {}).get("pool"),
    "layer": s.CHANNEL_LAYERS["default"]["BACKEND"],
    "layer_hosts": s.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("hosts"),
    "debug": s.DEBUG, "hosts": s.ALLOWED_HOSTS, "secret_length": len(s.SECRET_KEY),
}))
"""


def load_settings(tmp_path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG"}}
    clean.update(env, SUPERAI_FLOW_VAR_DIR=str(tmp_path))
    return subprocess.run([sys.executable, "-c", SNIPPET], env=clean, capture_output=True, text=True, timeout=60)


def settings_with(tmp_path, **env: str) -> dict:
    result = load_settings(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_no_configuration_means_sqlite_and_the_in_memory_layer(tmp_path):
    loaded = settings_with(tmp_path)

    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert loaded["name"] == str(tmp_path / "db.sqlite3")
    assert loaded["layer"] == "channels.layers.InMemoryChannelLayer"
    assert loaded["debug"] is False
    assert loaded["hosts"] == ["localhost", "127.0.0.1", "[::1]"]


def test_a_generated_secret_key_is_kept_between_starts(tmp_path):
    settings_with(tmp_path)
    key = (tmp_path / "secret_key").read_text()

    settings_with(tmp_path)

    assert len(key) >= 50 and (tmp_path / "secret_key").read_text() == key
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_postgres_uses_the_psycopg_pool_not_persistent_connections(tmp_path):
    loaded = settings_with(tmp_path, DATABASE_URL="postgres://app@db.example:5433/flows", DB_POOL_MAX_SIZE="7")

    assert loaded["engine"] == "superai_flow.postgresql"
    assert loaded["name"] == "flows"
    assert loaded["conn_max_age"] == 0
    # Connections are checked before use without a round trip (superai_flow/postgresql), not by Django's query.
    assert loaded["health_checks"] is False
    assert loaded["pool"] == {"min_size": 2, "max_size": 7, "timeout": 5}


def test_redis_url_selects_the_redis_channel_layer(tmp_path):
    loaded = settings_with(tmp_path, REDIS_URL="redis://cache.example:6380/2")

    assert loaded["layer"] == "superai_flow.channel_layer.BatchingRedisPubSubChannelLayer"
    assert [host["address"] for host in loaded["layer_hosts"]] == ["redis://cache.example:6380/2"]


def test_debug_and_allowed_hosts_come_from_the_environment(tmp_path):
    loaded = settings_with(tmp_path, DEBUG="yes", ALLOWED_HOSTS="flow.example.com, api.example.com")

    assert loaded["debug"] is True
    assert loaded["hosts"] == ["flow.example.com", "api.example.com"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"DATABASE_URL": "mysql://root@localhost/x"}, "DATABASE_URL must point at PostgreSQL"),
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be at least 32 characters"),
        ({"DATABASE_URL": "postgres://h/db", "DB_POOL_MAX_SIZE": "lots"}, "DB_POOL_MAX_SIZE='lots' is not an integer"),
        ({"DATABASE_URL": "postgres://h/db", "DB_POOL_MAX_SIZE": "0"}, "DB_POOL_MAX_SIZE=0 is too small"),
        ({"API_KEY_CACHE_SECONDS": "6"}, "API_KEY_CACHE_SECONDS=6 is too large; the maximum is 5"),
    ],
)
def test_bad_values_fail_loudly(tmp_path, env, message):
    result = load_settings(tmp_path, **env)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr
