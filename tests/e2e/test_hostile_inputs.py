"""Hostile input over the wire, against a real daphne: always a 4xx with the error envelope, never a 5xx."""

from __future__ import annotations

import json

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def target(daphne_server, tenant):
    organization_id, key = tenant
    auth = {"Authorization": f"Bearer {key}"}
    flow = httpx.post(f"{daphne_server.url}/api/v1/flow-executions", headers=auth,
                      json={"organization_id": organization_id, "flow_name": "hostile"}).json()  # fmt: skip
    body = json.dumps({"organization_id": organization_id, "flow_execution_id": flow["id"], "task_name": "t",
                       "summary": {}})  # fmt: skip
    return daphne_server.url, auth, body[:-1]  # an unclosed object, to append hostile fields to


def send(url: str, headers: dict, content: bytes | str, content_type: str | None = "application/json"):
    if content_type:
        headers = {**headers, "Content-Type": content_type}
    return httpx.post(f"{url}/api/v1/task-outputs", headers=headers, content=content, timeout=60)


def envelope(response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body["error"]["code"]


@pytest.mark.parametrize(
    ("fragment", "status", "code"),
    [
        ('"output": "nul \\u0000 byte"', 422, "validation_error"),
        ('"output": {"k\\u0000": 1}', 422, "validation_error"),
        ('"output": "\\ud800 lone"', 422, "validation_error"),
        ('"output": "\\udfff"', 422, "validation_error"),
        ('"output": ' + "[" * 10_000 + "]" * 10_000, 422, "validation_error"),
        ('"output": 1e999999', 422, "validation_error"),
        ('"output": -1e999999', 422, "validation_error"),
        ('"output": ' + "9" * 5000, 400, "parse_error"),
        ('"output": NaN', 400, "parse_error"),
        ('"task_name": "' + "x" * 1_000_000 + '"', 422, "validation_error"),
        ('"tags": [' + ",".join(['"t"'] * 10_000) + "]", 422, "validation_error"),
        ('"summary": {"a": "' + "y" * 200_000 + '"}', 422, "validation_error"),
    ],
)
def test_hostile_json_is_a_4xx(target, fragment, status, code):
    url, auth, body = target

    assert envelope(send(url, auth, body + ", " + fragment + "}"), status) == code


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"\x00\x01\x02\xff", "application/json", 400, "parse_error"),
        (b"\xef\xbb\xbf{}", "application/json", 400, "parse_error"),
        (b'{"a": 1}', "text/plain", 415, "unsupported_media_type"),
        (b"a=1&b=2", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"--x\r\nContent-Disposition: form-data\r\n\r\n1\r\n--x--", "multipart/form-data; boundary=x", 415,
         "unsupported_media_type"),
        (b"not multipart", "multipart/form-data; boundary=x", 415, "unsupported_media_type"),
        (b'{"a": 1}', None, 415, "unsupported_media_type"),
        (b"x" * (3 * 1024 * 1024), "application/json", 413, "payload_too_large"),
        (b"[]", "application/json", 400, "bad_request"),
    ],
)  # fmt: skip
def test_hostile_bodies_are_a_4xx(target, content, content_type, status, code):
    url, auth, _ = target

    assert envelope(send(url, auth, content, content_type), status) == code


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer " + "A" * 10_000,
        "Bearer sfk_" + "é" * 43,
        "Basic " + "=" * 100,
        "Bearer\tsfk_x",
        "sfk_" + "a" * 43,
        "Bearer sfk_" + "a" * 43 + " trailing",
        "\x7f",
    ],
)
def test_garbage_authorization_headers_are_a_401(target, authorization):
    url, _, _ = target
    response = httpx.get(f"{url}/api/v1/task-outputs", headers={"Authorization": authorization.encode("utf-8")})

    assert envelope(response, 401) in ("authentication_failed", "not_authenticated")


@pytest.mark.parametrize(
    "query",
    [
        "task_name=%00", "tag=%ff%fe", "summary.a=%ed%a0%80", "created_after=%00", "flow_execution_id=%zz",
        "summary." + "a." * 500 + "b=1", "page_size=99999999999999999999", "ordering=" + "x" * 10_000,
        "cursor=" + "A" * 5000, "after=%00", "status=" + ",".join(["x"] * 1000),
    ],
)  # fmt: skip
def test_hostile_query_strings_never_break_the_server(target, query):
    """Undecodable bytes become U+FFFD (and may simply match nothing); anything else is a 4xx envelope."""
    url, auth, _ = target
    response = httpx.get(f"{url}/api/v1/task-outputs?{query}", headers=auth)

    assert response.status_code < 500, (query[:80], response.status_code, response.text[:200])
    body = response.json()
    assert "results" in body if response.status_code == 200 else body["error"]["code"]


def test_unsupported_methods_are_a_405(target):
    url, auth, _ = target

    for method in ("PUT", "TRACE"):
        response = httpx.request(method, f"{url}/api/v1/task-outputs", headers=auth)
        assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
