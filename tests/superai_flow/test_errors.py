"""The error envelope on every path, X-Request-ID on every response, and the project-level pages."""

from __future__ import annotations

import logging

import pytest

from tests.helpers import error_of
from tests.task_outputs.test_create import URL, body_for


@pytest.mark.parametrize("request_id", ["abc-123", "A.b_C-9", "x" * 128])
def test_a_sane_client_request_id_is_kept(client_a, request_id):
    response = client_a.get(URL, HTTP_X_REQUEST_ID=request_id)

    assert response["X-Request-ID"] == request_id


@pytest.mark.parametrize("request_id", ["", "x" * 129, "has space", "semi;colon", "ünï"])
def test_an_unusable_client_request_id_is_replaced(client_a, request_id):
    response = client_a.get(URL, HTTP_X_REQUEST_ID=request_id)

    assert response["X-Request-ID"] != request_id
    assert len(response["X-Request-ID"]) == 32


def test_errors_repeat_the_request_id_in_the_body(anonymous_client):
    response = anonymous_client.get(URL, HTTP_X_REQUEST_ID="trace-1")

    assert error_of(response, 401, "not_authenticated")["request_id"] == "trace-1"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/healthz", "/readyz", "/no/such/page", "/api/v1/nothing"])
def test_every_response_carries_a_request_id(anonymous_client, path):
    assert anonymous_client.get(path).has_header("X-Request-ID")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v1/", "/api/v2/task-outputs", "/api/v1/task-outputs/a/b"])
def test_unknown_api_paths_answer_a_json_404(anonymous_client, path):
    error_of(anonymous_client.get(path), 404, "not_found")


@pytest.mark.django_db
def test_unknown_pages_answer_an_html_404(anonymous_client):
    response = anonymous_client.get("/no/such/page")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert b"Not found" in response.content


def test_a_method_the_endpoint_lacks_is_405(client_a):
    response = client_a.put(URL, {})

    error_of(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


def test_an_unexpected_failure_is_a_500_without_a_traceback(client_a, flow_a, monkeypatch, caplog):
    def explode(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("task_outputs.api.views.task_output_create", explode)
    with caplog.at_level(logging.ERROR):
        response = client_a.post(URL, body_for(flow_a), HTTP_X_REQUEST_ID="req-500")

    body = error_of(response, 500, "internal_error")
    assert "secret" not in response.content.decode() and "Traceback" not in response.content.decode()
    assert body["request_id"] == "req-500"
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert logged and "secret internals" in logged[0].getMessage()
    assert logged[0].request_id == "req-500"


@pytest.mark.django_db
def test_the_front_page_points_at_the_api_and_admin(anonymous_client):
    response = anonymous_client.get("/")

    assert response.status_code == 200
    assert b"/api/v1/task-outputs" in response.content and b'href="/admin/"' in response.content
