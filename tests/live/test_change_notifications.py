"""Every change made through the API reaches the watchers: task outputs updated or deleted, flow status."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from flow_executions.lifecycle import Status
from task_outputs import live
from tests.live.conftest import next_message, open_socket

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def watched(flow_a, make_output):
    return make_output(flow_a, status=Status.COMPLETED, tags=["a"])


async def api(client, method: str, path: str, body=None):
    response = await database_sync_to_async(getattr(client, method))(path, body)
    assert response.status_code in (200, 201, 204), response.content
    return response


async def test_changing_an_output_reaches_both_feeds(dispatcher, client_a, key_a, flow_a, watched):
    flow_socket = await open_socket(f"/ws/flow-executions/{flow_a.id}/", key=key_a)
    summary_socket = await open_socket("/ws/task-outputs/summaries/", key=key_a)

    await api(client_a, "patch", f"/api/v1/task-outputs/{watched.id}", {"status": "stale", "tags": ["a", "b"]})
    full, compact = await next_message(flow_socket), await next_message(summary_socket)

    assert full["type"] == "task_output.updated"
    assert (full["data"]["id"], full["data"]["status"], full["data"]["tags"]) == (str(watched.id), "stale", ["a", "b"])
    assert compact["type"] == "task_output.summary" and compact["data"]["status"] == "stale"
    assert live.decode_cursor(full["cursor"]) >= 0
    await flow_socket.disconnect()
    await summary_socket.disconnect()


async def test_deleting_an_output_reaches_both_feeds(dispatcher, client_a, key_a, flow_a, watched):
    flow_socket = await open_socket(f"/ws/flow-executions/{flow_a.id}/", key=key_a)
    summary_socket = await open_socket("/ws/task-outputs/summaries/", key=key_a)

    await api(client_a, "delete", f"/api/v1/task-outputs/{watched.id}")

    for socket, kind in ((flow_socket, "task_output.updated"), (summary_socket, "task_output.summary")):
        message = await next_message(socket)
        assert (message["type"], message["data"]["id"], message["data"]["status"]) == (kind, str(watched.id), "deleted")
        await socket.disconnect()


async def test_flow_status_changes_through_the_api_reach_the_flow_feed(dispatcher, client_a, key_a, flow_a):
    socket = await open_socket(f"/ws/flow-executions/{flow_a.id}/", key=key_a)

    await api(client_a, "patch", f"/api/v1/flow-executions/{flow_a.id}", {"status": "completed"})
    completed = await next_message(socket)
    await api(client_a, "delete", f"/api/v1/flow-executions/{flow_a.id}")
    deleted = await next_message(socket)

    assert (completed["type"], completed["data"]["status"]) == ("flow_execution.updated", "completed")
    assert completed["data"]["completed_at"]
    assert (deleted["type"], deleted["data"]["status"]) == ("flow_execution.updated", "deleted")
    await socket.disconnect()


async def test_a_change_that_changes_nothing_sends_nothing(dispatcher, client_a, key_a, flow_a, watched, make_output):
    socket = await open_socket(f"/ws/flow-executions/{flow_a.id}/", key=key_a)

    await api(client_a, "patch", f"/api/v1/task-outputs/{watched.id}", {"status": "completed", "tags": ["a"]})
    await api(client_a, "patch", f"/api/v1/flow-executions/{flow_a.id}", {"status": "queued"})
    marker = await database_sync_to_async(make_output)(flow_a)

    message = await next_message(socket)
    assert (message["type"], message["data"]["id"]) == ("task_output.created", str(marker.id))
    await socket.disconnect()


async def test_a_resume_replays_changes_as_updates(dispatcher, client_a, key_a, flow_a, watched):
    cursor = live.encode_cursor(await database_sync_to_async(live.current_horizon)())
    await api(client_a, "patch", f"/api/v1/task-outputs/{watched.id}", {"status": "stale"})

    socket = await open_socket(f"/ws/flow-executions/{flow_a.id}/", key=key_a)
    await socket.send_json_to({"type": "resume", "after": cursor})
    replayed = await next_message(socket)

    assert (replayed["type"], replayed["data"]["id"], replayed["data"]["status"]) == (
        "task_output.updated",
        str(watched.id),
        "stale",
    )
    assert (await next_message(socket))["type"] == "resumed"
    await socket.disconnect()
