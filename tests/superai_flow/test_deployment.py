"""Deployment: `check --deploy` is clean with production settings, and secrets stay out of the logs."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys

import pytest

from tests.e2e.servers import PROJECT_DIR
from tests.helpers import bearer_client, error_of
from tests.task_outputs.test_create import URL, body_for

PRODUCTION = {
    "DEBUG": "0",
    "ALLOWED_HOSTS": "flow.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://flow.example.com",
    "HTTPS": "1",
    "HSTS_SECONDS": "31536000",
    "HSTS_INCLUDE_SUBDOMAINS": "1",
    "HSTS_PRELOAD": "1",
}


def deploy_check(tmp_path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    clean.update(SUPERAI_FLOW_VAR_DIR=str(tmp_path), SECRET_KEY=secrets.token_urlsafe(50), **env)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_DIR, env=clean, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = deploy_check(tmp_path, **PRODUCTION)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_complains_about_development_settings(tmp_path):
    result = deploy_check(tmp_path, DEBUG="1")

    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016", "security.W018"):
        assert warning in result.stderr


def test_production_cookies_are_secure_and_plain_http_is_redirected(settings, client, db):
    settings.SECURE_SSL_REDIRECT = settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True

    redirect = client.get("/login/")
    probes = [client.get("/healthz"), client.get("/readyz"), client.get("/metrics")]
    page = client.get("/login/", secure=True)

    assert redirect.status_code == 301 and redirect["Location"].startswith("https://")
    assert [probe.status_code for probe in probes] == [200, 200, 200]  # probes and scrapes come over plain HTTP
    assert page.cookies["csrftoken"]["secure"] and page.cookies["csrftoken"]["httponly"]


def test_every_form_carries_a_csrf_token(client, db):
    assert 'name="csrfmiddlewaretoken"' in client.get("/login/").content.decode()


def test_keys_and_passwords_stay_out_of_the_logs(org_a, flow_a, key_a, monkeypatch, caplog, client):
    def explode(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("task_outputs.api.views.task_output_create", explode)
    with caplog.at_level(logging.DEBUG):
        error_of(bearer_client(key_a).post(URL, body_for(flow_a)), 500, "internal_error")
        error_of(bearer_client(key_a[:-1] + "x").get(URL), 401, "authentication_failed")
        client.post("/login/", {"username": "someone", "password": "hunter2-secret"})

    logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    assert "boom" in logged  # the failure is logged...
    assert key_a not in logged and key_a[:-1] not in logged  # ...without the key
    assert "hunter2-secret" not in logged


@pytest.mark.parametrize("setting", ["SESSION_COOKIE_HTTPONLY", "CSRF_COOKIE_HTTPONLY"])
def test_cookies_are_out_of_scripts_reach(settings, setting):
    assert getattr(settings, setting) is True
