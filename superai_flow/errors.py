"""The one error envelope: the DRF exception handler and Django's 400/403/404/500 views.

Every error of every API endpoint leaves through here as
``{"error": {"code", "message", "details"}, "request_id"}``; pages outside /api/ get HTML pages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

from superai_flow.exceptions import APIError, detail
from superai_flow.request_id import current_request_id

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"


def error_payload(code: str, message: str, details: Iterable[dict[str, Any]] = (), request_id: str | None = None):
    return {
        "error": {"code": code, "message": message, "details": list(details)},
        "request_id": request_id or current_request_id(),
    }


def flatten_validation_errors(errors: Any, path: str = "") -> list[dict[str, Any]]:
    """DRF's nested {field: [ErrorDetail]} (with dicts for lists and nested objects) as a flat list."""
    if isinstance(errors, dict):
        flat = []
        for key, value in errors.items():
            key = str(key)
            if key == api_settings.NON_FIELD_ERRORS_KEY:
                flat += flatten_validation_errors(value, path)
            else:
                flat += flatten_validation_errors(value, f"{path}.{key}" if path else key)
        return flat
    if isinstance(errors, list):
        flat = []
        for index, item in enumerate(errors):
            if isinstance(item, (dict, list)):
                flat += flatten_validation_errors(item, f"{path}.{index}" if path else str(index))
            else:
                flat += flatten_validation_errors(item, path)
        return flat
    code = getattr(errors, "code", None) or "invalid"
    return [detail(path or None, code, str(errors))]


_DRF_CODES = {
    drf.ParseError: "parse_error",
    drf.AuthenticationFailed: "authentication_failed",
    drf.NotAuthenticated: "not_authenticated",
    drf.PermissionDenied: "permission_denied",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "throttled",
}


def _describe(exc: Exception) -> tuple[int, str, str, list[dict[str, Any]], dict[str, str]]:
    """(status, code, message, details, headers) for any exception."""
    if isinstance(exc, APIError):
        return exc.status_code, exc.code, exc.message, exc.details, exc.headers
    if isinstance(exc, drf.ValidationError):
        details = flatten_validation_errors(exc.detail)
        return 422, "validation_error", "Request validation failed.", details, {}
    if isinstance(exc, (Http404, drf.NotFound)):
        return 404, "not_found", "Not found.", [], {}
    if isinstance(exc, DjangoPermissionDenied):
        return 403, "permission_denied", "You do not have permission to perform this action.", [], {}
    if isinstance(exc, drf.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), exc.default_code)
        return exc.status_code, code, str(exc.detail), [], headers
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.error("Database unavailable: %s", exc, exc_info=exc)
        message = "The database is unavailable; retry later."
        return 503, "service_unavailable", message, [], {"Retry-After": "5"}
    logger.error("Unhandled %s: %s", type(exc).__name__, exc, exc_info=exc)
    return 500, "internal_error", "An unexpected error occurred; it has been logged with this request id.", [], {}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every exception of every API view becomes the envelope."""
    status, code, message, details, headers = _describe(exc)
    if isinstance(exc, DatabaseError) or status >= 500:
        set_rollback()
    return Response(error_payload(code, message, details), status=status, headers=headers)


def _api_or_page(request: HttpRequest, status: int, code: str, message: str, template: str) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_payload(code, message), status=status)
    return render(request, template, {"status": status, "message": message}, status=status)


def database_unavailable(request: HttpRequest, exc: Exception) -> HttpResponse:
    """503 when the database cannot be reached before a view even runs."""
    logger.error("Database unavailable: %s", exc)
    message = "The database is unavailable; retry later."
    if request.path.startswith(API_PREFIX):
        response = JsonResponse(error_payload("service_unavailable", message), status=503)
    else:
        page = f"<!doctype html><title>Unavailable</title><h1>Unavailable</h1><p>{message}</p>"
        response = HttpResponse(page, status=503)
    response["Retry-After"] = "5"
    return response


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _api_or_page(request, 400, "bad_request", "The request is malformed.", "error.html")


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _api_or_page(request, 403, "permission_denied", "You do not have permission to see this.", "error.html")


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _api_or_page(request, 404, "not_found", "Not found.", "error.html")


def handler500(request: HttpRequest) -> HttpResponse:
    message = "An unexpected error occurred; it has been logged with this request id."
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_payload("internal_error", message), status=500)
    # No template rendering here: a broken template must not turn the error page into another error.
    return HttpResponse(
        f"<!doctype html><title>Server error</title><h1>Server error</h1><p>{message}</p>"
        f"<p>Request id: <code>{current_request_id()}</code></p>",
        status=500,
    )
