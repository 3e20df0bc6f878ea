"""Open WebSockets lose their feeds within seconds of their credentials being withdrawn.

Every open feed is registered here with who opened it (`WebSocketCaller`: an API key, or a signed-in
user) and the organizations it shows. Every WS_CREDENTIAL_CHECK_SECONDS each server process checks all
of its feeds together, one query per kind of credential, and closes a feed whose API key was revoked
or deleted, or whose user was deactivated or deleted, with 4401; a feed whose user may no longer see
one of its organizations (removed from it, or no longer a superuser) closes with 4403. Each process
checks its own sockets from the database, so this holds on every process and whatever Redis does:
within the contract's 5 seconds of the change.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Protocol

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model

from superai_flow.authentication import CLOSE_FORBIDDEN, CLOSE_NOT_AUTHENTICATED, WebSocketCaller
from superai_flow.organizations.models import APIKey
from superai_flow.tenancy import tenant_scope, user_organization_ids

logger = logging.getLogger(__name__)


class Feed(Protocol):
    caller: WebSocketCaller

    def watched_organization_ids(self) -> frozenset[uuid.UUID]: ...

    async def close(self, code: int | None = None) -> None: ...


# The open feeds of each event loop (a server has one; tests may run several one after the other),
# and the task that checks them, which ends when its loop has no feed left.
_feeds: dict[asyncio.AbstractEventLoop, set[Feed]] = {}
_checkers: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}


def watch(feed: Feed) -> None:
    loop = asyncio.get_running_loop()
    _feeds.setdefault(loop, set()).add(feed)
    if loop not in _checkers:
        _checkers[loop] = loop.create_task(_check_while_watched(loop))


def unwatch(feed: Feed) -> None:
    feeds = _feeds.get(asyncio.get_running_loop())
    if feeds is not None:
        feeds.discard(feed)


async def _check_while_watched(loop: asyncio.AbstractEventLoop) -> None:
    try:
        while _feeds.get(loop):
            await asyncio.sleep(settings.WS_CREDENTIAL_CHECK_SECONDS)
            feeds = list(_feeds.get(loop, ()))
            if not feeds:
                break
            try:
                verdicts = await database_sync_to_async(closing_codes)(
                    [(feed.caller, feed.watched_organization_ids()) for feed in feeds]
                )
            except Exception:  # the database is down, say: keep the feeds, try again next time
                logger.warning("Could not check the credentials of %d open WebSockets", len(feeds), exc_info=True)
                continue
            for feed, code in zip(feeds, verdicts, strict=True):
                if code is not None:
                    unwatch(feed)
                    await feed.close(code=code)
    finally:
        _checkers.pop(loop, None)
        if not _feeds.get(loop):
            _feeds.pop(loop, None)


def closing_codes(feeds: list[tuple[WebSocketCaller, frozenset[uuid.UUID]]]) -> list[int | None]:
    """For each (caller, organizations shown) the close code its feed deserves now, or None to keep it."""
    key_organizations = {
        caller.api_key_id: next(iter(caller.organization_ids)) for caller, _ in feeds if caller.api_key_id
    }
    active_keys: set[uuid.UUID] = set()
    if key_organizations:
        with tenant_scope(set(key_organizations.values())):
            active_keys = set(
                APIKey.objects.filter(pk__in=key_organizations, revoked_at__isnull=True).values_list("pk", flat=True)
            )
    user_ids = {caller.user_id for caller, _ in feeds if caller.user_id is not None}
    users = {
        user.pk: user
        for user in get_user_model().objects.filter(pk__in=user_ids, is_active=True).only("pk", "is_superuser")
    }
    memberships = {pk: user_organization_ids(pk) for pk, user in users.items() if not user.is_superuser}

    def verdict(caller: WebSocketCaller, shown: frozenset[uuid.UUID]) -> int | None:
        if caller.api_key_id is not None:
            return None if caller.api_key_id in active_keys else CLOSE_NOT_AUTHENTICATED
        user = users.get(caller.user_id)
        if user is None:
            return CLOSE_NOT_AUTHENTICATED
        if user.is_superuser or shown <= memberships[user.pk]:
            return None
        return CLOSE_FORBIDDEN

    return [verdict(caller, shown) for caller, shown in feeds]
