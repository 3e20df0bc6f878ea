"""Live-update fixtures: a dispatcher on the test's event loop, communicators on the real ASGI app."""

from __future__ import annotations

import asyncio
import json

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User

from superai_flow import notifications
from superai_flow.asgi import application
from superai_flow.organizations.models import Membership
from task_outputs.services import task_output_create


@pytest.fixture(autouse=True)
def own_dispatcher(monkeypatch):
    """Each test gets its own dispatcher, so none stays tied to an earlier test's (closed) event loop."""
    fresh = notifications.Dispatcher(
        max_queue=settings.NOTIFY_MAX_QUEUE,
        send_timeout=settings.NOTIFY_SEND_TIMEOUT_SECONDS,
        max_age=settings.NOTIFY_MAX_AGE_SECONDS,
        drain_seconds=0,
    )
    monkeypatch.setattr(notifications, "_dispatcher", fresh)
    yield fresh
    fresh.close()


@pytest_asyncio.fixture
async def dispatcher(own_dispatcher):
    """The test's dispatcher on its event loop, where an in-memory layer's consumers live too."""
    own_dispatcher.attach(asyncio.get_running_loop())
    return own_dispatcher


@database_sync_to_async
def create_output(flow, **fields):
    """A task output of `flow`, written as the API writes one (its live messages follow the commit)."""
    fields.setdefault("task_name", "extract")
    fields.setdefault("summary", {"pages": 3})
    return task_output_create(organization_id=flow.organization_id, flow_execution_id=flow.id, **fields)[0]


@pytest.fixture
def signed_in_cookie(org_a, client):
    """The session cookie of a signed-in member of org_a, as a handshake or request header."""
    user = User.objects.create_user("alice", password="pw")
    Membership.objects.create(user=user, organization=org_a)
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


def communicator(path: str, *, key: str | None = None, headers=()) -> WebsocketCommunicator:
    all_headers = list(headers)
    if key is not None:
        all_headers.append((b"authorization", f"Bearer {key}".encode()))
    return WebsocketCommunicator(application, path, headers=all_headers)


async def open_socket(path: str, **kwargs) -> WebsocketCommunicator:
    """A connected communicator that the server kept open (it failed the test otherwise)."""
    socket = communicator(path, **kwargs)
    connected, _ = await socket.connect()
    assert connected
    assert await socket.receive_nothing(timeout=0.2), "the server closed or spoke first"
    return socket


async def close_code(socket: WebsocketCommunicator) -> int:
    """The code the server closed with (it accepts first, then closes)."""
    connected, _ = await socket.connect()
    assert connected
    event = await socket.receive_output(timeout=5)
    assert event["type"] == "websocket.close", event
    return event["code"]


async def next_message(socket: WebsocketCommunicator, timeout: float = 5) -> dict:
    """The next JSON message that is not a heartbeat."""
    while True:
        message = json.loads(await socket.receive_from(timeout=timeout))
        if message["type"] != "heartbeat":
            return message


def group_members(group: str) -> set[str]:
    """The channels of this process in `group`, read from the in-memory or Redis pub/sub layer."""
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        return set(layer.groups.get(group, {}))
    loop_layer = layer._get_layer()
    return set(loop_layer.groups.get(loop_layer._get_group_channel_name(group), set()))
