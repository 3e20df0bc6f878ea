"""GET /api/v1/task-outputs/stream (Server-Sent Events) through the real ASGI application and channel layer.

The stream shares its code with the WebSocket feeds (task_outputs/consumers.py); these tests check what a
stream client sees: events, resuming, errors, heartbeats, revocation, and that a closed stream leaves nothing.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlencode

import pytest
from channels.db import database_sync_to_async
from channels.testing import ApplicationCommunicator

from flow_executions.lifecycle import Status
from superai_flow import credential_watch
from superai_flow.asgi import application
from superai_flow.metrics import EVENT_STREAM_CLIENTS
from superai_flow.organizations.models import APIKey
from superai_flow.organizations.services import api_key_create, api_key_revoke
from task_outputs import live
from tests.helpers import EventStreamReader
from tests.live.conftest import create_output, group_members

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

PATH = "/api/v1/task-outputs/stream"


class Stream:
    """One request to the stream, read as a client reads it."""

    def __init__(self, query: dict | None = None, *, key: str | None = None, headers=(), method: str = "GET"):
        all_headers = list(headers)
        if key is not None:
            all_headers.append((b"authorization", f"Bearer {key}".encode()))
        scope = {
            "type": "http", "http_version": "1.1", "method": method, "scheme": "http", "path": PATH,
            "raw_path": PATH.encode(), "query_string": urlencode(query or {}, doseq=True).encode(), "root_path": "",
            "headers": all_headers, "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
        }  # fmt: skip
        self.app = ApplicationCommunicator(application, scope)
        self.reader = EventStreamReader()
        self.blocks: list[dict[str, str]] = []
        self.more = True

    async def start(self) -> tuple[int, dict[bytes, bytes]]:
        await self.app.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await self.app.receive_output(timeout=5)
        assert start["type"] == "http.response.start", start
        return start["status"], dict(start["headers"])

    async def body(self, timeout: float = 5) -> bytes:
        """The next piece of the body (b"" once the server has ended it)."""
        if not self.more:
            return b""
        message = await self.app.receive_output(timeout=timeout)
        assert message["type"] == "http.response.body", message
        self.more = message.get("more_body", False)
        return message["body"]

    async def block(self, timeout: float = 5) -> dict[str, str]:
        """The next block: an event, an `id:` alone, a `retry:`, a comment."""
        while not self.blocks:
            piece = await self.body(timeout)
            if not piece and not self.more:
                raise EOFError("the server ended the stream")
            self.blocks += self.reader.feed(piece.decode())
        return self.blocks.pop(0)

    async def event(self, timeout: float = 5) -> dict:
        """The next event, its data parsed (blocks without an event name are skipped)."""
        while "event" not in (block := await self.block(timeout)):
            pass
        return {**block, "data": json.loads(block["data"])}

    async def error(self) -> tuple[int, dict]:
        status, headers = await self.start()
        assert headers[b"content-type"] == b"application/json"
        return status, json.loads(await self.body())

    async def leave(self) -> None:
        await self.app.send_input({"type": "http.disconnect"})
        await self.app.wait(timeout=5)


async def open_stream(query: dict | None = None, **kwargs) -> Stream:
    stream = Stream(query, **kwargs)
    status, headers = await stream.start()
    assert status == 200
    assert headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert headers[b"cache-control"].startswith(b"no-cache")
    return stream


async def now_cursor() -> str:
    return live.encode_cursor(await database_sync_to_async(live.current_horizon)())


# --- Events -----------------------------------------------------------------------------------------


async def test_the_summary_stream_sends_each_new_output_as_an_event_with_its_cursor(dispatcher, flow_a, key_a):
    stream = await open_stream(key=key_a)
    first = await stream.block()
    assert first["retry"] == "2000" and live.decode_cursor(first["id"])  # Last-Event-ID from the start

    output = await create_output(flow_a, tags=["nightly"])

    event = await stream.event()
    assert event["event"] == "task_output.summary"
    assert live.decode_cursor(event["id"]) <= output.write_txid
    assert event["data"] == {
        "id": str(output.id), "flow_execution_id": str(flow_a.id), "task_name": "extract", "status": "queued",
        "summary": {"pages": 3}, "tags": ["nightly"], "created_at": event["data"]["created_at"],
    }  # fmt: skip
    await stream.leave()


async def test_the_flow_stream_sends_full_records_and_status_changes(dispatcher, flow_a, key_a):
    stream = await open_stream({"flow_execution_id": flow_a.id}, key=key_a)

    output = await create_output(flow_a, output={"text": "line one\nline two"})
    event = await stream.event()
    assert (event["event"], event["data"]["id"], event["data"]["output"]) == (
        "task_output.created",
        str(output.id),
        {"text": "line one\nline two"},
    )  # a newline in the data stays inside the one `data:` line (JSON escapes it)

    def start():
        flow_a.status = Status.RUNNING
        flow_a.save()

    await database_sync_to_async(start)()
    event = await stream.event()
    assert "id" not in event  # status changes carry no cursor: Last-Event-ID stays the output's
    assert (event["event"], event["data"]["status"]) == ("flow_execution.updated", "running")
    await stream.leave()


async def test_summary_filters_choose_what_arrives(dispatcher, flow_a, key_a):
    stream = await open_stream({"status": "failed,running", "tag": "nightly"}, key=key_a)

    await create_output(flow_a, status=Status.FAILED)  # no tag
    await create_output(flow_a, status=Status.COMPLETED, tags=["nightly"])
    wanted = await create_output(flow_a, status=Status.FAILED, tags=["nightly", "eu"])

    assert (await stream.event())["data"]["id"] == str(wanted.id)
    await stream.leave()


async def test_another_organization_hears_nothing(dispatcher, flow_a, flow_b, key_a):
    key_b = await database_sync_to_async(lambda: api_key_create(organization=flow_b.organization, name="b")[1])()
    stream = await open_stream(key=key_b)
    await stream.block()  # the cursor

    await create_output(flow_a)

    assert await stream.app.receive_nothing(timeout=0.5)
    await stream.leave()


# --- Resuming -----------------------------------------------------------------------------------------


async def test_last_event_id_replays_what_was_missed_then_goes_on_live(dispatcher, flow_a, key_a):
    stream = await open_stream({"flow_execution_id": flow_a.id}, key=key_a)
    first = await create_output(flow_a, task_name="first")
    seen = await stream.event()
    await stream.leave()
    missed = [await create_output(flow_a, task_name=f"missed-{n}") for n in range(3)]

    stream = await open_stream(
        {"flow_execution_id": flow_a.id}, key=key_a, headers=[(b"last-event-id", seen["id"].encode())]
    )
    replayed = []
    while (event := await stream.event())["event"] != "resumed":
        replayed.append(event["data"]["task_name"])
    live_output = await create_output(flow_a, task_name="after")

    assert [name for name in replayed if name != first.task_name] == [m.task_name for m in missed]
    assert (await stream.event())["data"]["id"] == str(live_output.id)
    await stream.leave()


async def test_the_first_cursor_of_a_new_stream_resumes_without_a_gap(dispatcher, flow_a, key_a):
    stream = await open_stream(key=key_a)
    cursor = (await stream.block())["id"]
    await stream.leave()  # before any event
    missed = await create_output(flow_a)

    stream = await open_stream(key=key_a, headers=[(b"last-event-id", cursor.encode())])

    assert (await stream.event())["data"]["id"] == str(missed.id)
    assert (await stream.event())["event"] == "resumed"
    await stream.leave()


async def test_after_resumes_like_last_event_id_which_wins_over_it(dispatcher, flow_a, key_a):
    early = await now_cursor()
    old = await create_output(flow_a, task_name="old")
    late = await now_cursor()
    new = await create_output(flow_a, task_name="new")

    by_after = await open_stream({"after": early}, key=key_a)
    by_header = await open_stream({"after": early}, key=key_a, headers=[(b"last-event-id", late.encode())])

    assert [(await by_after.event())["data"]["id"] for _ in range(2)] == [str(old.id), str(new.id)]
    assert (await by_header.event())["data"]["id"] == str(new.id)
    assert (await by_header.event())["event"] == "resumed"
    await by_after.leave()
    await by_header.leave()


async def test_too_long_a_replay_sends_resync_required_with_a_cursor_for_now(dispatcher, flow_a, key_a, settings):
    settings.WS_MAX_REPLAY = 3
    cursor = await now_cursor()
    for _ in range(4):
        await create_output(flow_a)

    stream = await open_stream({"after": cursor}, key=key_a)
    resync = await stream.event()
    output = await create_output(flow_a)

    assert resync["event"] == "resync_required" and resync["data"] == {}
    assert live.decode_cursor(resync["id"]) > live.decode_cursor(cursor)
    assert (await stream.event())["data"]["id"] == str(output.id)  # live events go on
    await stream.leave()


async def test_idle_streams_get_heartbeat_comments(flow_a, key_a, settings):
    settings.SSE_HEARTBEAT_SECONDS = 1
    stream = await open_stream(key=key_a)
    await stream.block()

    assert await stream.block(timeout=3) == {"comment": "heartbeat"}
    await stream.leave()


# --- Refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [[], [(b"authorization", b"Bearer sfk_unknown")], [(b"authorization", b"Basic abc")]],
    ids=["none", "unknown key", "not bearer"],
)
async def test_missing_or_bad_credentials_get_401_with_the_error_envelope(headers):
    status, body = await Stream(headers=[*headers, (b"x-request-id", b"req-1")]).error()

    assert status == 401
    assert body["error"]["code"] == "not_authenticated" and "Bearer" in body["error"]["message"]
    assert body["request_id"] == "req-1"


async def test_a_key_that_may_not_read_gets_403(org_a):
    key = await database_sync_to_async(lambda: api_key_create(organization=org_a, name="w", scopes="write")[1])()

    assert (await Stream(key=key).error())[0] == 403


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"status": "bogus"}, "'bogus' is not a status"),
        ({"colour": "red"}, "Unknown parameter 'colour'"),
        ({"after": "not-a-cursor"}, "after is not a cursor"),
        ({"organization_id": "nope"}, "organization_id is not a UUID"),
        ({"flow_execution_id": "x", "status": "failed"}, "give no other filter"),
    ],
)
async def test_bad_parameters_get_400_saying_which(key_a, query, message):
    status, body = await Stream(query, key=key_a).error()

    assert status == 400 and body["error"]["code"] == "bad_request"
    assert message in body["error"]["message"]


async def test_a_bad_last_event_id_gets_400(key_a):
    status, body = await Stream(key=key_a, headers=[(b"last-event-id", b"bm9wZQ")]).error()

    assert status == 400 and "Last-Event-ID" in body["error"]["message"]


async def test_unknown_deleted_or_foreign_flows_get_404(make_flow, org_a, flow_b, key_a):
    deleted = await database_sync_to_async(make_flow)(org_a, status=Status.DELETED)
    for flow_id in ["5d3c1a4e-0000-4000-8000-000000000000", deleted.id, flow_b.id, "not-a-uuid"]:
        status, body = await Stream({"flow_execution_id": flow_id}, key=key_a).error()
        assert (status, body["error"]["code"]) == (404, "not_found")


async def test_other_methods_get_405(key_a):
    status, body = await Stream(key=key_a, method="POST").error()

    assert status == 405 and body["error"]["code"] == "method_not_allowed"


# --- Sessions ---------------------------------------------------------------------------------------


async def test_a_session_streams_without_an_origin_as_browsers_send_it(dispatcher, flow_a, signed_in_cookie):
    stream = await open_stream({"flow_execution_id": flow_a.id}, headers=[signed_in_cookie])

    output = await create_output(flow_a)

    assert (await stream.event())["data"]["id"] == str(output.id)
    await stream.leave()


async def test_a_session_from_another_origin_gets_403(flow_a, signed_in_cookie):
    headers = [signed_in_cookie, (b"origin", b"https://evil.example")]

    assert (await Stream({"flow_execution_id": flow_a.id}, headers=headers).error())[0] == 403


async def test_a_session_sees_only_its_organizations(flow_b, signed_in_cookie):
    assert (await Stream({"flow_execution_id": flow_b.id}, headers=[signed_in_cookie]).error())[0] == 404
    query = {"organization_id": flow_b.organization_id}
    assert (await Stream(query, headers=[signed_in_cookie]).error())[0] == 403


# --- Ending -----------------------------------------------------------------------------------------


async def test_a_revoked_key_ends_its_streams(dispatcher, flow_a, org_a, key_a, settings):
    settings.WS_CREDENTIAL_CHECK_SECONDS = 0.2
    stream = await open_stream(key=key_a)

    await database_sync_to_async(lambda: api_key_revoke(api_key=APIKey.objects.get(name="worker-a")))()

    with pytest.raises(EOFError):
        while True:
            block = await stream.block(timeout=5)
    assert block == {"comment": "closed: the credentials were revoked"}
    await stream.leave()


async def test_a_stream_that_ends_leaves_its_groups_and_is_no_longer_counted(dispatcher, flow_a, key_a):
    counted = EVENT_STREAM_CLIENTS._value.get()
    stream = await open_stream({"flow_execution_id": flow_a.id}, key=key_a)
    group = f"flow_execution.{flow_a.id}"
    assert len(group_members(group)) == 1
    assert EVENT_STREAM_CLIENTS._value.get() == counted + 1

    await stream.leave()

    assert group_members(group) == set()
    assert EVENT_STREAM_CLIENTS._value.get() == counted
    assert not credential_watch._feeds.get(asyncio.get_running_loop())
