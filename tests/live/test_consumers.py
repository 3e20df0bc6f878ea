"""The WebSocket feeds through the real ASGI application and channel layer (Redis in CI's Redis pass)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import User
from django.db import transaction

from flow_executions.lifecycle import Status
from superai_flow import credential_watch
from superai_flow.organizations.models import APIKey, Membership
from superai_flow.organizations.services import api_key_create, api_key_revoke
from task_outputs import consumers, feeds, live
from task_outputs.consumers import LiveFeedConsumer
from task_outputs.models import TaskOutput
from task_outputs.services import task_output_create, task_output_update
from tests.live.conftest import close_code, communicator, create_output, group_members, next_message, open_socket

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

FULL_FIELDS = {"id", "flow_execution_id", "organization_id", "flow_version", "task_execution_id", "task_name",
               "status", "summary", "output", "tags", "modified_by", "created_at", "updated_at"}  # fmt: skip
SUMMARY_FIELDS = {"id", "flow_execution_id", "task_name", "status", "summary", "tags", "created_at"}


def flow_path(flow) -> str:
    return f"/ws/flow-executions/{flow.id}/"


SUMMARIES = "/ws/task-outputs/summaries/"


# --- Delivery -----------------------------------------------------------------------------------


async def test_a_flow_watcher_receives_each_new_output_with_a_cursor(dispatcher, flow_a, key_a):
    socket = await open_socket(flow_path(flow_a), key=key_a)

    output = await create_output(flow_a, tags=["pdf"], output={"text": "…"})
    message = await next_message(socket)

    assert message["type"] == "task_output.created"
    assert set(message["data"]) == FULL_FIELDS
    assert message["data"]["id"] == str(output.id) and message["data"]["output"] == {"text": "…"}
    assert live.decode_cursor(message["cursor"]) <= output.write_txid
    await socket.disconnect()


async def test_a_summary_watcher_receives_compact_records(dispatcher, flow_a, key_a):
    socket = await open_socket(SUMMARIES, key=key_a)

    output = await create_output(flow_a, summary={"pages": 10, "word_count": 5000})
    message = await next_message(socket)

    assert message["type"] == "task_output.summary"
    assert set(message["data"]) == SUMMARY_FIELDS
    assert message["data"]["id"] == str(output.id)
    assert message["data"]["summary"] == {"pages": 10, "word_count": 5000}
    assert message["cursor"]
    await socket.disconnect()


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ("?status=completed", {"done"}),
        ("?status=failed,completed", {"done", "failed"}),
        ("?status=failed&status=completed", {"done", "failed"}),
        ("?task_name=extract", {"done", "failed"}),
        ("?tag=pdf&tag=ocr", {"tagged"}),
        ("?tag=pdf", {"tagged", "done"}),
    ],
)
async def test_summary_filters_choose_what_arrives(dispatcher, flow_a, key_a, query, wanted):
    socket = await open_socket(SUMMARIES + query, key=key_a)

    created = {
        "done": await create_output(flow_a, status=Status.COMPLETED, tags=["pdf"]),
        "failed": await create_output(flow_a, status=Status.FAILED),
        "tagged": await create_output(flow_a, task_name="ocr", status=Status.RUNNING, tags=["ocr", "pdf"]),
    }
    # Matches every filter above, so its arrival means everything before it has been decided.
    marker = await create_output(flow_a, status=Status.COMPLETED, tags=["pdf", "ocr"])
    names = {str(output.id): name for name, output in created.items()}
    received = set()
    while (data := (await next_message(socket))["data"])["id"] != str(marker.id):
        received.add(names[data["id"]])

    assert received == wanted
    await socket.disconnect()


async def test_flow_status_changes_reach_the_flow_watchers(dispatcher, flow_a, key_a):
    socket = await open_socket(flow_path(flow_a), key=key_a)

    def start():
        flow_a.status = Status.RUNNING
        flow_a.save()

    await database_sync_to_async(start)()
    message = await next_message(socket)

    assert message["type"] == "flow_execution.updated"
    assert message["data"]["id"] == str(flow_a.id) and message["data"]["status"] == "running"
    await socket.disconnect()


async def test_a_rolled_back_output_is_never_announced(dispatcher, flow_a, key_a):
    flow_socket = await open_socket(flow_path(flow_a), key=key_a)
    summary_socket = await open_socket(SUMMARIES, key=key_a)

    def create_then_fail():
        with transaction.atomic():
            task_output_create(
                organization_id=flow_a.organization_id, flow_execution_id=flow_a.id, task_name="doomed", summary={}
            )
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await database_sync_to_async(create_then_fail)()
    kept = await create_output(flow_a, task_name="kept")

    assert (await next_message(flow_socket))["data"]["id"] == str(kept.id)
    assert (await next_message(summary_socket))["data"]["id"] == str(kept.id)
    await flow_socket.disconnect()
    await summary_socket.disconnect()


# --- Isolation and authentication ---------------------------------------------------------------


async def test_another_organization_hears_nothing(dispatcher, flow_a, flow_b, key_a):
    key_b = await database_sync_to_async(lambda: api_key_create(organization=flow_b.organization, name="b")[1])()
    theirs = await open_socket(SUMMARIES, key=key_b)
    theirs_flow = await open_socket(flow_path(flow_b), key=key_b)
    mine = await open_socket(SUMMARIES, key=key_a)

    await create_output(flow_a)
    await next_message(mine)  # delivered to org A ...

    assert await theirs.receive_nothing(timeout=0.5)  # ... and to nobody in org B
    assert await theirs_flow.receive_nothing(timeout=0.1)
    assert await close_code(communicator(flow_path(flow_a), key=key_b)) == 4404
    for socket in (theirs, theirs_flow, mine):
        await socket.disconnect()


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"authorization", b"Bearer sfk_" + b"x" * 43)],
        [(b"authorization", b"Basic dXNlcjpwYXNz")],
        [(b"authorization", b"Bearer")],
        [(b"origin", b"http://localhost")],
    ],
)
async def test_missing_or_bad_credentials_close_with_4401(flow_a, headers):
    assert await close_code(communicator(flow_path(flow_a), headers=headers)) == 4401
    assert await close_code(communicator(SUMMARIES, headers=headers)) == 4401


async def test_a_key_that_may_not_read_closes_with_4403(flow_a, org_a):
    key = await database_sync_to_async(lambda: api_key_create(organization=org_a, name="w", scopes="write")[1])()

    assert await close_code(communicator(flow_path(flow_a), key=key)) == 4403
    assert await close_code(communicator(SUMMARIES, key=key)) == 4403


async def test_a_revoked_key_closes_with_4401(flow_a, org_a, key_a):
    await database_sync_to_async(lambda: api_key_revoke(api_key=APIKey.objects.get(organization=org_a)))()

    assert await close_code(communicator(flow_path(flow_a), key=key_a)) == 4401


async def test_unknown_deleted_or_foreign_flows_close_with_4404(make_flow, org_a, flow_b, key_a):
    deleted = await database_sync_to_async(make_flow)(org_a, status=Status.DELETED)

    for flow_id in (uuid.uuid4(), deleted.id, flow_b.id):
        assert await close_code(communicator(f"/ws/flow-executions/{flow_id}/", key=key_a)) == 4404


async def test_a_session_from_an_allowed_origin_may_watch(dispatcher, flow_a, signed_in_cookie):
    socket = await open_socket(flow_path(flow_a), headers=[signed_in_cookie, (b"origin", b"http://localhost:8000")])

    output = await create_output(flow_a)

    assert (await next_message(socket))["data"]["id"] == str(output.id)
    await socket.disconnect()


@pytest.mark.parametrize("origin", [None, b"https://evil.example", b"null"])
async def test_a_session_from_another_origin_closes_with_4403(flow_a, signed_in_cookie, origin):
    headers = [signed_in_cookie] + ([(b"origin", origin)] if origin else [])

    assert await close_code(communicator(flow_path(flow_a), headers=headers)) == 4403


async def test_a_session_sees_only_its_organizations(flow_b, signed_in_cookie):
    origin = (b"origin", b"http://localhost")

    assert await close_code(communicator(flow_path(flow_b), headers=[signed_in_cookie, origin])) == 4404
    path = f"{SUMMARIES}?organization_id={flow_b.organization_id}"
    assert await close_code(communicator(path, headers=[signed_in_cookie, origin])) == 4403


# --- Credentials withdrawn while a socket is open (superai_flow.credential_watch) ---------------


@pytest.fixture
def quick_credential_checks(settings):
    settings.WS_CREDENTIAL_CHECK_SECONDS = 0.2


async def closed_with(socket, timeout: float = 5) -> int:
    """The code the server closes an open socket with, skipping what it sent before."""
    while (event := await socket.receive_output(timeout=timeout))["type"] != "websocket.close":
        pass
    return event["code"]


async def test_a_key_revoked_while_its_sockets_are_open_closes_them_with_4401(
    quick_credential_checks, dispatcher, flow_a, org_a, key_a
):
    sockets = [await open_socket(flow_path(flow_a), key=key_a), await open_socket(SUMMARIES, key=key_a)]
    other_key = (await database_sync_to_async(api_key_create)(organization=org_a, name="other"))[1]
    kept = await open_socket(flow_path(flow_a), key=other_key)

    await database_sync_to_async(lambda: api_key_revoke(api_key=APIKey.objects.get(name="worker-a")))()

    assert [await closed_with(socket) for socket in sockets] == [4401, 4401]
    assert await kept.receive_nothing(timeout=0.5)  # another key of the same organization keeps its feed
    output = await create_output(flow_a)
    assert (await next_message(kept))["data"]["id"] == str(output.id)
    await kept.disconnect()


async def test_a_member_removed_from_the_organization_loses_its_feeds_with_4403(
    quick_credential_checks, dispatcher, flow_a, org_a, signed_in_cookie
):
    origin = (b"origin", b"http://localhost")
    sockets = [await open_socket(path, headers=[signed_in_cookie, origin]) for path in (flow_path(flow_a), SUMMARIES)]

    await database_sync_to_async(lambda: Membership.objects.filter(organization=org_a).delete())()

    assert [await closed_with(socket) for socket in sockets] == [4403, 4403]


async def test_a_deactivated_user_loses_its_feeds_with_4401(
    quick_credential_checks, dispatcher, flow_a, signed_in_cookie
):
    socket = await open_socket(flow_path(flow_a), headers=[signed_in_cookie, (b"origin", b"http://localhost")])

    await database_sync_to_async(lambda: User.objects.filter(username="alice").update(is_active=False))()

    assert await closed_with(socket) == 4401


@pytest.mark.parametrize(
    "query",
    ["?status=nope", "?colour=red", f"?organization_id={uuid.uuid4()}x", "?organization_id=a&organization_id=b"],
)
async def test_bad_summary_filters_close_with_4400(key_a, query):
    assert await close_code(communicator(SUMMARIES + query, key=key_a)) == 4400


# --- Messages from clients ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"type": "subscribe"}',
        '{"type": "resume"}',
        '{"type": "resume", "after": "garbage"}',
        '{"type": "resume", "after": 12}',
    ],
)
async def test_malformed_messages_close_with_4400(flow_a, key_a, text):
    socket = await open_socket(flow_path(flow_a), key=key_a)

    await socket.send_to(text_data=text)
    event = await socket.receive_output(timeout=5)

    assert event == {"type": "websocket.close", "code": 4400}


async def test_resume_replays_what_was_missed_then_says_resumed(dispatcher, org_a, flow_a, key_a, make_flow):
    socket = await open_socket(flow_path(flow_a), key=key_a)
    first = await create_output(flow_a, task_name="first")
    cursor = (await next_message(socket))["cursor"]
    await socket.disconnect()

    missed = [await create_output(flow_a, task_name=f"missed-{i}") for i in range(3)]
    other_flow = await database_sync_to_async(make_flow)(org_a)
    await create_output(other_flow, task_name="elsewhere")

    socket = await open_socket(flow_path(flow_a), key=key_a)
    await socket.send_json_to({"type": "resume", "after": cursor})
    replayed = []
    while (message := await next_message(socket))["type"] != "resumed":
        assert message["type"] == "task_output.created" and message["cursor"]
        replayed.append(message["data"]["task_name"])

    # Everything missed, in write order; the output already seen may come again (clients deduplicate).
    assert [name for name in replayed if name != first.task_name] == [m.task_name for m in missed]
    await socket.disconnect()


async def test_summary_resume_honours_the_filters(dispatcher, flow_a, key_a):
    cursor = live.encode_cursor(await database_sync_to_async(live.current_horizon)())
    await create_output(flow_a, status=Status.FAILED)
    wanted = await create_output(flow_a, status=Status.COMPLETED)

    socket = await open_socket(SUMMARIES + "?status=completed", key=key_a)
    await socket.send_json_to({"type": "resume", "after": cursor})

    assert (await next_message(socket))["data"]["id"] == str(wanted.id)
    assert (await next_message(socket))["type"] == "resumed"
    await socket.disconnect()


async def test_too_long_a_replay_asks_the_client_to_resync(dispatcher, flow_a, key_a, settings):
    settings.WS_MAX_REPLAY = 3
    cursor = live.encode_cursor(await database_sync_to_async(live.current_horizon)())
    for _ in range(4):
        await create_output(flow_a)

    socket = await open_socket(flow_path(flow_a), key=key_a)
    await socket.send_json_to({"type": "resume", "after": cursor})

    assert (await next_message(socket)) == {"type": "resync_required"}
    output = await create_output(flow_a)
    assert (await next_message(socket))["data"]["id"] == str(output.id)  # live messages go on
    await socket.disconnect()


async def test_idle_connections_get_heartbeats(flow_a, key_a, settings):
    settings.WS_HEARTBEAT_SECONDS = 1
    socket = await open_socket(flow_path(flow_a), key=key_a)

    assert await socket.receive_json_from(timeout=3) == {"type": "heartbeat"}
    await socket.disconnect()


async def test_disconnecting_leaves_the_group(dispatcher, flow_a, key_a):
    socket = await open_socket(flow_path(flow_a), key=key_a)
    await socket.disconnect()
    await asyncio.sleep(0.05)

    # A second watcher still gets messages; the first, gone, left no member behind.
    watcher = await open_socket(flow_path(flow_a), key=key_a)
    output = await create_output(flow_a)
    assert (await next_message(watcher))["data"]["id"] == str(output.id)
    await watcher.disconnect()

    assert group_members(f"flow_execution.{flow_a.id}") == set()


async def test_a_consumer_the_server_cancels_leaves_everything_it_joined(dispatcher, flow_a, key_a):
    # daphne cancels a consumer still running 10 s after its client left (one busy replaying, say):
    # it never reads `websocket.disconnect`, and used to stay in its group, watched, beating.
    socket = await open_socket(flow_path(flow_a), key=key_a)
    group = f"flow_execution.{flow_a.id}"
    assert len(group_members(group)) == 1

    socket.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await socket.future
    await asyncio.sleep(0)  # the cancelled heartbeat finishes

    assert group_members(group) == set()
    assert not credential_watch._feeds.get(asyncio.get_running_loop())
    beating = [task for task in asyncio.all_tasks() if task.get_coro().__qualname__ == "LiveFeedConsumer._beat"]
    assert beating == []


@pytest.mark.redis
async def test_a_consumer_that_ends_with_a_message_unread_forgets_its_channel(dispatcher, flow_a, key_a, monkeypatch):
    busy, release = asyncio.Event(), asyncio.Event()

    async def slow_forward(self, text):
        busy.set()
        await release.wait()

    monkeypatch.setattr(LiveFeedConsumer, "forward", slow_forward)
    socket = await open_socket(flow_path(flow_a), key=key_a)
    group = f"flow_execution.{flow_a.id}"
    [channel] = group_members(group)
    layer = get_channel_layer()
    loop_layer = layer._get_layer()

    # While it is busy with a first message, a second comes and the client leaves: then it reads the
    # second and the disconnection together, and stops with the second unhandled.
    for n in range(2):
        await layer.group_send(group, {"type": "task_output.created", "text": f'{{"n": {n}}}'})
    async with asyncio.timeout(5):
        await busy.wait()
        while loop_layer.channels[channel].qsize() < 1:
            await asyncio.sleep(0.01)
    await socket.send_input({"type": "websocket.disconnect", "code": 1000})
    await asyncio.sleep(0.05)
    release.set()
    await socket.wait(timeout=5)

    assert group_members(group) == set()
    assert channel not in loop_layer.channels  # its queue, which channels-redis kept when no receive was waiting
    assert channel not in loop_layer._get_shard(channel)._subscribed_to


# --- Replays that take a while -------------------------------------------------------------------


def slow_batches(monkeypatch, seconds: float) -> list[tuple[float, str]]:
    """Make each replay batch take `seconds` more (in its database thread), two rows a batch; when each
    batch started, and for which consumer (its channel)."""
    started: list[tuple[float, str]] = []
    replay_batch = LiveFeedConsumer._replay_batch

    def slow(self, horizon, after):
        started.append((time.monotonic(), self.channel_name))
        time.sleep(seconds)
        return replay_batch(self, horizon, after)

    monkeypatch.setattr(LiveFeedConsumer, "_replay_batch", slow)
    monkeypatch.setattr(consumers, "REPLAY_BATCH", 2)
    return started


async def replayed(socket) -> list[str]:
    """The ids a resume replays, up to `resumed`."""
    ids = []
    while (message := await next_message(socket))["type"] != "resumed":
        ids.append(message["data"]["id"])
    return ids


async def test_a_consumer_whose_client_leaves_mid_replay_stops_at_once_and_leaves_its_groups(
    dispatcher, flow_a, key_a, monkeypatch
):
    cursor = live.encode_cursor(await database_sync_to_async(live.current_horizon)())
    for _ in range(20):
        await create_output(flow_a)
    batches = slow_batches(monkeypatch, 0.2)
    socket = await open_socket(flow_path(flow_a), key=key_a)
    group = f"flow_execution.{flow_a.id}"

    await socket.send_json_to({"type": "resume", "after": cursor})
    assert (await next_message(socket))["type"] == "task_output.created"  # the replay is under way
    left = time.monotonic()
    await socket.send_input({"type": "websocket.disconnect", "code": 1000})
    await socket.wait(timeout=1)
    ended = time.monotonic()

    # It ended without waiting for the rest of the replay (10 batches of 0.2 s), and queries no more batches.
    assert ended - left < 0.5
    assert group_members(group) == set()
    assert not credential_watch._feeds.get(asyncio.get_running_loop())
    await asyncio.sleep(0.3)
    assert len(batches) <= 2 and all(start < ended for start, _ in batches)


async def test_live_messages_that_arrive_during_a_replay_follow_resumed_in_order(
    dispatcher, flow_a, key_a, monkeypatch
):
    cursor = live.encode_cursor(await database_sync_to_async(live.current_horizon)())
    missed = [await create_output(flow_a, task_name=f"missed-{i}") for i in range(5)]
    slow_batches(monkeypatch, 0.3)
    socket = await open_socket(flow_path(flow_a), key=key_a)

    await socket.send_json_to({"type": "resume", "after": cursor})
    during = [await create_output(flow_a, task_name=f"live-{i}") for i in range(3)]
    names = []
    while (message := await next_message(socket))["type"] != "resumed":
        names.append(message["data"]["task_name"])
    after_resumed = [(await next_message(socket))["data"]["task_name"] for _ in during]

    # The replay may already include rows written while it ran; the live messages come after `resumed`.
    assert names[: len(missed)] == [output.task_name for output in missed]
    assert set(names[len(missed) :]) <= {output.task_name for output in during}
    assert after_resumed == [output.task_name for output in during]
    await socket.disconnect()


async def test_the_feed_serves_live_messages_again_after_a_replay(dispatcher, flow_a, key_a):
    cursor = live.encode_cursor(await database_sync_to_async(live.current_horizon)())
    socket = await open_socket(flow_path(flow_a), key=key_a)
    await socket.send_json_to({"type": "resume", "after": cursor})
    assert (await next_message(socket))["type"] == "resumed"

    output = await create_output(flow_a)

    assert (await next_message(socket))["data"]["id"] == str(output.id)
    await socket.disconnect()


async def test_the_replays_of_a_process_take_turns(dispatcher, flow_a, key_a, monkeypatch):
    monkeypatch.setattr(consumers, "REPLAYS_AT_ONCE", 1)
    cursor = live.encode_cursor(await database_sync_to_async(live.current_horizon)())
    written = [str((await create_output(flow_a)).id) for _ in range(5)]
    batches = slow_batches(monkeypatch, 0.05)
    first, second = [await open_socket(flow_path(flow_a), key=key_a) for _ in range(2)]

    for socket in (first, second):
        await socket.send_json_to({"type": "resume", "after": cursor})
    assert await replayed(first) == written
    assert await replayed(second) == written

    # One replay at a time: every batch of the first before any of the second.
    consumers_in_order = [channel for _, channel in batches]
    assert len(set(consumers_in_order)) == 2
    assert consumers_in_order == sorted(consumers_in_order, key=consumers_in_order.index)
    for socket in (first, second):
        await socket.disconnect()


async def test_a_replay_waiting_its_turn_is_dropped_when_its_client_leaves(dispatcher, flow_a, key_a, monkeypatch):
    monkeypatch.setattr(consumers, "REPLAYS_AT_ONCE", 1)
    cursor = live.encode_cursor(await database_sync_to_async(live.current_horizon)())
    written = [str((await create_output(flow_a)).id) for _ in range(5)]
    batches = slow_batches(monkeypatch, 0.1)
    busy, leaving = [await open_socket(flow_path(flow_a), key=key_a) for _ in range(2)]

    await busy.send_json_to({"type": "resume", "after": cursor})
    await next_message(busy)  # its replay holds the turn
    await leaving.send_json_to({"type": "resume", "after": cursor})
    await leaving.send_input({"type": "websocket.disconnect", "code": 1000})
    await leaving.wait(timeout=0.5)

    assert len(await replayed(busy)) == len(written) - 1
    assert len({channel for _, channel in batches}) == 1  # the one that left never queried
    await busy.disconnect()


# --- Replay texts ---------------------------------------------------------------------------------


async def test_a_replay_reuses_the_texts_earlier_replays_made_and_remakes_changed_rows(
    dispatcher, flow_a, key_a, monkeypatch
):
    feed = feeds.FlowFeed
    monkeypatch.setattr(feed, "replay_texts", live.ReplayTexts(2**20))
    made = []
    replay_text = feed.replay_text

    def counting(self, row):
        made.append(row.task_name)
        return replay_text(self, row)

    monkeypatch.setattr(feed, "replay_text", counting)
    cursor = live.encode_cursor(await database_sync_to_async(live.current_horizon)())
    outputs = [await create_output(flow_a, task_name=f"t{n}") for n in range(3)]

    async def resume() -> list[dict]:
        socket = await open_socket(flow_path(flow_a), key=key_a)
        await socket.send_json_to({"type": "resume", "after": cursor})
        messages = []
        while (message := await next_message(socket))["type"] != "resumed":
            messages.append(message)
        await socket.disconnect()
        return messages

    first = await resume()
    await database_sync_to_async(lambda: task_output_update(task_output=outputs[0], actor="test", tags=["retagged"]))()
    second = await resume()

    assert sorted(made[:3]) == ["t0", "t1", "t2"]
    assert made[3:] == ["t0"]  # the second replay made only the changed row's text again
    assert [m["data"]["task_name"] for m in first] == ["t0", "t1", "t2"]
    assert [(m["type"], m["data"]["task_name"], m["data"]["tags"]) for m in second] == [
        ("task_output.created", "t1", []),
        ("task_output.created", "t2", []),
        ("task_output.updated", "t0", ["retagged"]),
    ]


async def test_replay_texts_keep_the_newest_rows_up_to_their_size_in_bytes():
    texts = live.ReplayTexts(max_bytes=20)  # two of these 7-character texts, not three
    rows = [TaskOutput(id=uuid.uuid4(), revision=1, write_txid=txid) for txid in (10, 11, 12)]
    for row in rows:
        texts.put(row, f"text {row.write_txid}")

    assert [texts.get(row.id, 1) for row in rows] == [None, "text 11", "text 12"]
    assert texts.bytes == 14
    texts.put(rows[0], "text 10")  # older than what was dropped: a far-behind replay keeps nothing
    assert texts.get(rows[0].id, 1) is None and texts.get(rows[1].id, 1) == "text 11"
    assert texts.get(rows[2].id, 2) is None  # another revision of the row
    rows[2].revision = 2
    texts.put(rows[2], "text 12, v2")  # replaces the row's text: 7 + 11 bytes kept
    assert texts.bytes == 18 and texts.get(rows[2].id, 2) == "text 12, v2" and texts.get(rows[1].id, 1) == "text 11"
