"""Assertions and clients that many tests share."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient


def bearer_client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def error_of(response, status: int, code: str) -> dict[str, Any]:
    """Assert `response` is the error envelope with `status` and `code`; return the body."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["request_id"] == response["X-Request-ID"]
    return body


def detail_codes(response) -> dict[str | None, str]:
    """{field: code} of an error response's details."""
    return {d["field"]: d["code"] for d in response.json()["error"]["details"]}
