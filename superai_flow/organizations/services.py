"""Writes for organizations and API keys."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from superai_flow.organizations.models import APIKey, Organization
from superai_flow.tenancy import api_key_by_prefix, set_scope, tenant_scope

KEY_PREFIX = "sfk_"
# "sfk_" + 43 characters of URL-safe base64 (32 random bytes).
_KEY_FORMAT = re.compile(r"sfk_[A-Za-z0-9_-]{43}")
_LOOKUP_PREFIX_LENGTH = 12


def _hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def organization_create(*, name: str) -> Organization:
    return Organization.objects.create(name=name)


def api_key_create(
    *, organization: Organization, name: str, scopes: str = APIKey.Scopes.READ_WRITE
) -> tuple[APIKey, str]:
    """A new key for `organization`; returns the record and the key itself, which is not stored."""
    for _ in range(5):
        raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            with transaction.atomic():
                api_key = APIKey.objects.create(
                    organization=organization,
                    name=name,
                    scopes=scopes,
                    prefix=raw_key[:_LOOKUP_PREFIX_LENGTH],
                    key_hash=_hash(raw_key),
                )
        except IntegrityError:  # a prefix collision: 48 random bits make this rare; draw again
            continue
        return api_key, raw_key
    raise RuntimeError("Could not draw an unused API key prefix.")


def api_key_revoke(*, api_key: APIKey) -> None:
    """Revoked keys are refused from the next request on; the record stays for audit."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at", "updated_at"])


def api_key_authenticate(raw_key: str, *, scope: bool = False) -> APIKey | None:
    """The active key matching `raw_key`, or None. Looks up by prefix, compares hashes in constant time.

    With `scope`, the current transaction is also scoped to the key's organization (in the lookup's own
    statement, see tenancy.api_key_by_prefix) when, and only when, the key is valid. A key found valid
    is remembered for API_KEY_CACHE_SECONDS (see _recent_keys).
    """
    if not _KEY_FORMAT.fullmatch(raw_key):
        return None
    key_hash = _hash(raw_key)
    api_key = _recent_keys.get(key_hash)
    if api_key is None:
        api_key = api_key_by_prefix(raw_key[:_LOOKUP_PREFIX_LENGTH], scope_if_hash=key_hash if scope else None)
        if api_key is None or not hmac.compare_digest(api_key.key_hash, key_hash) or not api_key.is_active:
            return None
        _recent_keys.remember(api_key)
    if scope and not getattr(api_key, "scoped", False):
        set_scope([api_key.organization_id])  # a remembered key, SQLite, or outside a transaction
    _touch(api_key)
    return api_key


class _RecentKeys:
    """Valid API keys seen in the last API_KEY_CACHE_SECONDS, by hash: most requests need no key lookup.

    The contract lets a revoked key work for at most 5 seconds anywhere, so the setting is capped at 5.
    In this process a key is forgotten as soon as it is saved or deleted (revoking saves it); other
    processes forget it when its time is up. Only keys that were valid are kept, so unknown keys cannot
    fill the cache, and it never holds more than MAX_ENTRIES.
    """

    MAX_ENTRIES = 10_000

    def __init__(self):
        self._entries: dict[str, tuple[float, list]] = {}

    def get(self, key_hash: str) -> APIKey | None:
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] <= time.monotonic():
            return None
        # A fresh instance for every request: related objects cached on one never leak into another.
        return APIKey.from_db("default", _API_KEY_ATTNAMES, entry[1])

    def remember(self, api_key: APIKey) -> None:
        seconds = settings.API_KEY_CACHE_SECONDS
        if seconds <= 0:
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        values = [getattr(api_key, name) for name in _API_KEY_ATTNAMES]
        self._entries[api_key.key_hash] = (time.monotonic() + seconds, values)

    def forget(self, key_hash: str) -> None:
        self._entries.pop(key_hash, None)

    def clear(self) -> None:
        self._entries.clear()


_API_KEY_ATTNAMES = [field.attname for field in APIKey._meta.concrete_fields]
_recent_keys = _RecentKeys()


def forget_api_key(sender, instance: APIKey, **kwargs) -> None:
    """post_save / post_delete of an API key: this process stops trusting what it remembered of it."""
    _recent_keys.forget(instance.key_hash)


def _touch(api_key: APIKey) -> None:
    """Record use, at most once per API_KEY_LAST_USED_RESOLUTION_SECONDS so that reads stay reads."""
    now = timezone.now()
    resolution = timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_SECONDS)
    if api_key.last_used_at is None or now - api_key.last_used_at >= resolution:
        with tenant_scope([api_key.organization_id]):
            APIKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
        _recent_keys.remember(api_key)
