"""Who is calling, and which organizations they may act for, over HTTP and WebSocket handshakes.

API clients send `Authorization: Bearer <api key>` (one organization per key); signed-in browser
users act for the organizations they are members of (superusers: all of them).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from urllib.parse import urlparse

from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.db import connection
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from superai_flow.exceptions import PermissionDenied, detail
from superai_flow.organizations.models import APIKey, Organization
from superai_flow.organizations.selectors import organization_ids_for_user
from superai_flow.organizations.services import api_key_authenticate


@dataclass(frozen=True)
class APIKeyUser:
    """The request.user of an API-key request: acts for exactly the key's organization."""

    api_key: APIKey
    is_authenticated: bool = field(default=True, init=False)
    is_anonymous: bool = field(default=False, init=False)
    is_staff: bool = field(default=False, init=False)
    is_superuser: bool = field(default=False, init=False)

    @property
    def identity(self) -> str:
        return self.api_key.identity

    def __str__(self) -> str:
        return self.identity


class APIKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <key>`. Any Authorization header that is not a valid, active key is a 401."""

    def authenticate(self, request: Request):
        header = request.META.get("HTTP_AUTHORIZATION")
        if header is None:
            return None
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise AuthenticationFailed("Send the API key as 'Authorization: Bearer <key>'.")
        # The request's transaction sees the key's organization only, from the key's lookup on. (A request
        # without one, see TenantScopeMiddleware, scopes its statements itself.)
        api_key = api_key_authenticate(credentials.strip(), scope=connection.in_atomic_block)
        if api_key is None:
            raise AuthenticationFailed("The API key is unknown or has been revoked.")
        return APIKeyUser(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class KeyScopePermission(BasePermission):
    """API keys read (GET, HEAD, OPTIONS) only with the `read` scope and write only with `write`."""

    def has_permission(self, request: Request, view) -> bool:
        user = request.user
        if not isinstance(user, APIKeyUser):
            return True
        if request.method in SAFE_METHODS:
            self.message = "This API key may not read: it has only the write scope."
            return user.api_key.can_read
        self.message = "This API key may only read: it has no write scope."
        return user.api_key.can_write


def caller_identity(request: Request) -> str:
    """Who made a change, for `modified_by`: `api_key:<key id>` or `user:<user id>`."""
    user = request.user
    return user.identity if isinstance(user, APIKeyUser) else f"user:{user.pk}"


def caller_organization_ids(request: Request) -> frozenset[uuid.UUID] | None:
    """The organizations the caller may see and act for; None means every organization (superusers)."""
    cached = getattr(request, "_organization_ids", False)
    if cached is not False:
        return cached
    user = request.user
    if isinstance(user, APIKeyUser):
        ids = frozenset({user.api_key.organization_id})
    elif not user.is_authenticated:  # e.g. the schema generator's fake requests
        ids = frozenset()
    elif user.is_superuser:
        ids = None
    else:
        ids = organization_ids_for_user(user)
    request._organization_ids = ids
    return ids


def caller_may_act_for(request: Request, organization_id: uuid.UUID) -> bool:
    ids = caller_organization_ids(request)
    if ids is None:
        return Organization.objects.filter(pk=organization_id).exists()
    return organization_id in ids


def scope_to_caller(queryset, request: Request, field_name: str = "organization_id"):
    """`queryset` limited to the caller's organizations."""
    ids = caller_organization_ids(request)
    if ids is None:
        return queryset
    if len(ids) == 1:
        return queryset.filter(**{field_name: next(iter(ids))})
    return queryset.filter(**{f"{field_name}__in": ids})


def require_organization(request: Request, organization_id: uuid.UUID) -> None:
    """403 unless the caller may act for `organization_id` (whether or not it exists)."""
    if not caller_may_act_for(request, organization_id):
        raise PermissionDenied(
            details=[detail("organization_id", "permission_denied", "You may not act for this organization.")]
        )


# --- Live feeds: WebSocket handshakes and event streams ------------------------------------------

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


@dataclass(frozen=True)
class WebSocketCaller:
    """Who opened a WebSocket: the organizations they may watch (None: every organization), and the
    API key or user whose credentials keep it open (superai_flow.credential_watch)."""

    organization_ids: frozenset[uuid.UUID] | None
    api_key_id: uuid.UUID | None = None
    user_id: int | None = None


async def live_caller(scope, *, origin_required: bool = True) -> WebSocketCaller | int:
    """Authenticate a live feed's request by `Authorization: Bearer` or the session cookie; else a close code.

    Cookie-authenticated WebSockets must come from an allowed Origin (cross-site WebSocket hijacking);
    Bearer clients may send no Origin at all. A Server-Sent Events stream (`origin_required=False`) is an
    ordinary GET that browsers send without an Origin from the same site and that other sites cannot read
    (CORS), so only an Origin it does send must be allowed.
    """
    headers = dict(scope.get("headers", []))
    authorization = headers.get(b"authorization")
    if authorization is not None:
        scheme, _, credentials = authorization.decode("latin-1").strip().partition(" ")
        if scheme.lower() != "bearer":
            return CLOSE_NOT_AUTHENTICATED
        api_key = await database_sync_to_async(api_key_authenticate)(credentials.strip())
        if api_key is None:
            return CLOSE_NOT_AUTHENTICATED
        if not api_key.can_read:
            return CLOSE_FORBIDDEN
        return WebSocketCaller(frozenset({api_key.organization_id}), api_key_id=api_key.pk)
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return CLOSE_NOT_AUTHENTICATED
    origin = headers.get(b"origin")
    if origin is None and origin_required:
        return CLOSE_FORBIDDEN
    if origin is not None and not _origin_validator.valid_origin(urlparse(origin.decode("latin-1"))):
        return CLOSE_FORBIDDEN
    if user.is_superuser:
        return WebSocketCaller(None, user_id=user.pk)
    return WebSocketCaller(await database_sync_to_async(organization_ids_for_user)(user), user_id=user.pk)


class _AllowedHostsOrigins(OriginValidator):
    """Channels' origin matching against ALLOWED_HOSTS, read when checked (so settings overrides apply)."""

    def __init__(self):
        super().__init__(application=None, allowed_origins=())

    def valid_origin(self, parsed_origin) -> bool:
        self.allowed_origins = settings.ALLOWED_HOSTS
        return super().valid_origin(parsed_origin)


_origin_validator = _AllowedHostsOrigins()
