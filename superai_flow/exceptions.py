"""Domain errors: small exception classes with an HTTP status and a stable code.

Services raise them; superai_flow.errors turns them into the error envelope. This module imports
nothing from DRF so that models and services can use it freely.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class APIError(Exception):
    """A domain error with an HTTP status and a stable machine-readable code."""

    status_code = 400
    code = "bad_request"
    default_message = "The request could not be processed."

    def __init__(self, message: str | None = None, *, details: Iterable[dict[str, Any]] = (), headers=None):
        self.message = message or self.default_message
        self.details = list(details)
        self.headers = headers or {}
        super().__init__(self.message)


class BadRequest(APIError):
    status_code, code, default_message = 400, "bad_request", "The request is malformed."


class PermissionDenied(APIError):
    status_code, code, default_message = 403, "permission_denied", "You may not act for this organization."


class NotFound(APIError):
    status_code, code, default_message = 404, "not_found", "Not found."


class Conflict(APIError):
    status_code, code, default_message = 409, "conflict", "The request conflicts with the stored record."


class PayloadTooLarge(APIError):
    status_code, code, default_message = 413, "payload_too_large", "The request body is too large."


class UnprocessableEntity(APIError):
    status_code, code, default_message = 422, "validation_error", "Request validation failed."


def detail(field: str | None, code: str, message: str) -> dict[str, Any]:
    """One entry of an error's `details`: which field, a stable code, a human message."""
    return {"field": field, "code": code, "message": message}


class TooManyRequests(APIError):
    status_code, code, default_message = 429, "too_many_requests", "Too many requests; try again shortly."

    def __init__(self, message: str | None = None, *, retry_after: int = 5):
        super().__init__(message, headers={"Retry-After": str(retry_after)})
