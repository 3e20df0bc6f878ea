"""X-Request-ID on every request and response, and in every log line written while serving it."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
_SANE = re.compile(r"[A-Za-z0-9._-]{1,128}")
_current: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def current_request_id() -> str:
    return _current.get()


def request_id_for(supplied: str) -> str:
    """The client's X-Request-ID if it is sane (1-128 of [A-Za-z0-9._-]), otherwise a new one."""
    return supplied if _SANE.fullmatch(supplied) else uuid.uuid4().hex


def request_id_from(scope: dict) -> str:
    """The request id of an ASGI request that Django does not serve (the event stream)."""
    return request_id_for(dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1"))


class RequestIDMiddleware:
    """Keeps a client's sane X-Request-ID (1-128 of [A-Za-z0-9._-]), otherwise makes a new one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_for(request.headers.get(HEADER, ""))
        request.request_id = request_id
        token = _current.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        response[HEADER] = request_id
        return response


class RequestIDLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _current.get()
        return True
