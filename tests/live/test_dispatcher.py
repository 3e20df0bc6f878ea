"""The background dispatcher: bounded, never blocking writers, retrying, dropping loudly, draining at exit."""

from __future__ import annotations

import asyncio
import itertools
import logging
import subprocess
import time

import pytest
import redis as redis_py
from channels.layers import get_channel_layer
from redis.asyncio.client import Pipeline

from superai_flow.notifications import Dispatcher
from tests.e2e.servers import RedisServer, free_port

BATCHING = "superai_flow.channel_layer.BatchingRedisPubSubChannelLayer"  # what settings use with REDIS_URL
ONE_BY_ONE = "channels_redis.pubsub.RedisPubSubChannelLayer"  # no group_send_many: the dispatcher's fallback
PREFIX = "dispatcher_test"


def pubsub_layer(url: str, backend: str = BATCHING) -> dict:
    config = {"hosts": [{"address": url, "socket_connect_timeout": 1}], "prefix": PREFIX}
    return {"default": {"BACKEND": backend, "CONFIG": config}}


@pytest.fixture(params=[BATCHING, ONE_BY_ONE], ids=["batched", "one_by_one"])
def backend(request) -> str:
    return request.param


def publish_calls(redis: RedisServer) -> int:
    """PUBLISH commands the server has executed, however they were sent."""
    client = redis_py.Redis.from_url(redis.url)
    try:
        return client.info("commandstats").get("cmdstat_publish", {}).get("calls", 0)
    finally:
        client.close()


def wait_for(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_messages_to_an_unreachable_layer_are_retried_then_dropped_and_counted(settings, caplog, backend):
    settings.CHANNEL_LAYERS = pubsub_layer(f"redis://127.0.0.1:{free_port()}/0", backend)
    dispatcher = Dispatcher(max_queue=2, send_timeout=1, max_age=0.5, drain_seconds=0)

    with caplog.at_level(logging.WARNING, logger="superai_flow.notifications"):
        started = time.monotonic()
        dispatcher.submit([("g", {"type": "t.a"})] * 5)
        submitted_in = time.monotonic() - started
        wait_for(lambda: dispatcher.counters["dropped"] == 5)

    assert submitted_in < 0.5  # the writer never waits for the layer
    assert dispatcher.counters["retried"] >= 1 and dispatcher.counters["sent"] == 0
    messages = [record.getMessage() for record in caplog.records]
    assert any("queue full" in message for message in messages)
    assert any("Dropped notification t.a to g" in message for message in messages)
    dispatcher.close()


@pytest.mark.redis
@pytest.mark.asyncio
async def test_sends_resume_by_themselves_when_redis_comes_back(settings, backend):
    redis = RedisServer().start()
    settings.CHANNEL_LAYERS = pubsub_layer(redis.url, backend)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("recovering", channel)
    dispatcher = Dispatcher(max_queue=10, send_timeout=1, max_age=20, drain_seconds=0)
    try:
        await asyncio.to_thread(redis.stop)
        dispatcher.submit([("recovering", {"type": "t.during_outage"})])
        await asyncio.sleep(1)
        await asyncio.to_thread(redis.start)
        # The receiving side resubscribes on its own after a restart; probe until it hears again.
        deadline = time.monotonic() + 15
        while True:
            dispatcher.submit([("recovering", {"type": "t.after_outage"})])
            try:
                message = await asyncio.wait_for(layer.receive(channel), 0.5)
            except TimeoutError:
                assert time.monotonic() < deadline, "no delivery after Redis came back"
                continue
            if message["type"] == "t.after_outage":
                break
        assert dispatcher.counters["retried"] >= 1
    finally:
        dispatcher.close()
        await layer.group_discard("recovering", channel)
        redis.stop()


@pytest.mark.redis
@pytest.mark.asyncio
async def test_what_is_queued_at_exit_is_drained(settings, backend):
    redis = RedisServer().start()
    settings.CHANNEL_LAYERS = pubsub_layer(redis.url, backend)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("draining", channel)
    dispatcher = Dispatcher(max_queue=10, send_timeout=1, max_age=30, drain_seconds=8)
    try:
        # Writes (PUBLISH among them) wait for 1.5 s, so the messages are still queued at "exit".
        pause = ["redis-cli", "-p", str(redis.port), "CLIENT", "PAUSE", "1500", "WRITE"]
        subprocess.run(pause, check=True, capture_output=True)
        dispatcher.submit([("draining", {"type": "t.message", "n": n}) for n in range(3)])
        await asyncio.sleep(0.2)
        assert dispatcher.counters["sent"] == 0

        await asyncio.to_thread(dispatcher.drain)

        # At least once: the message that was in flight when the worker stopped may come twice.
        received: set[int] = set()
        while received != {0, 1, 2}:
            received.add((await asyncio.wait_for(layer.receive(channel), 5))["n"])
    finally:
        await layer.group_discard("draining", channel)
        redis.stop()


async def until(condition, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.mark.redis
@pytest.mark.asyncio
async def test_a_burst_goes_out_in_order_in_one_round_trip_per_batch(settings, monkeypatch):
    redis = RedisServer().start()
    settings.CHANNEL_LAYERS = pubsub_layer(redis.url)
    pipelines: list[list[str]] = []  # the commands of each pipeline executed, that is of each round trip
    execute = Pipeline.execute

    async def counted_execute(self, *args, **kwargs):
        pipelines.append([str(command[0]) for command, _ in self.command_stack])
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", counted_execute)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("burst", channel)
    dispatcher = Dispatcher(max_queue=1000, send_timeout=2, max_age=30, drain_seconds=0)
    try:
        await layer.group_send("burst", {"type": "t.probe"})  # the subscription is in place once this is back
        assert (await asyncio.wait_for(layer.receive(channel), 5))["type"] == "t.probe"

        dispatcher.submit([("burst", {"type": "t.message", "n": n}) for n in range(600)])

        received = [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(600)]
        assert received == list(range(600))
        await until(lambda: dispatcher.counters["sent"] == 600)
        # All 600 were queued before the worker woke up: three full batches, one round trip each.
        assert [len(commands) for commands in pipelines] == [200, 200, 200]
        assert {command for commands in pipelines for command in commands} == {"PUBLISH"}
        assert publish_calls(redis) == 1 + 600  # the probe, then each message exactly once
        assert dispatcher.counters["retried"] == dispatcher.counters["dropped"] == 0
    finally:
        dispatcher.close()
        await layer.group_discard("burst", channel)
        redis.stop()


@pytest.mark.redis
@pytest.mark.asyncio
async def test_under_steady_traffic_a_batch_goes_out_at_most_once_per_interval(settings, monkeypatch):
    redis = RedisServer().start()
    settings.CHANNEL_LAYERS = pubsub_layer(redis.url)
    pipelines: list[tuple[float, int]] = []  # (when, how many messages) of each round trip
    execute = Pipeline.execute

    async def counted_execute(self, *args, **kwargs):
        pipelines.append((time.monotonic(), len(self.command_stack)))
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", counted_execute)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("steady", channel)
    dispatcher = Dispatcher(max_queue=100, send_timeout=2, max_age=30, drain_seconds=0, interval=0.25)
    dispatcher.attach(asyncio.get_running_loop())
    try:
        await layer.group_send("steady", {"type": "t.probe"})  # the subscription is in place once this is back
        assert (await asyncio.wait_for(layer.receive(channel), 5))["type"] == "t.probe"

        started = time.monotonic()
        for n in range(12):  # a message every 20 ms
            dispatcher.submit([("steady", {"type": "t.message", "n": n})])
            await asyncio.sleep(0.02)
        received = [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(12)]

        assert received == list(range(12))
        # The first, after a quiet spell, went at once; the rest waited for the interval and went together.
        assert pipelines[0][1] == 1 and pipelines[0][0] - started < 0.15
        assert sum(size for _, size in pipelines) == 12 and len(pipelines) <= 3
        gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(pipelines)]
        assert min(gaps) > 0.25 - 0.02, gaps
    finally:
        dispatcher.close()
        await layer.group_discard("steady", channel)
        redis.stop()


@pytest.mark.redis
@pytest.mark.asyncio
async def test_a_batch_sent_while_redis_is_down_arrives_once_it_is_back(settings):
    redis = RedisServer().start()
    settings.CHANNEL_LAYERS = pubsub_layer(redis.url)
    layer = get_channel_layer()
    # On this test's loop, the dispatcher cannot try again while the test holds the loop (below).
    dispatcher = Dispatcher(max_queue=100, send_timeout=1, max_age=60, drain_seconds=0)
    dispatcher.attach(asyncio.get_running_loop())
    subscriber = redis_py.Redis.from_url(redis.url).pubsub()
    try:
        redis.stop()
        dispatcher.submit([("outage", {"type": "t.message", "n": n}) for n in range(50)])
        await until(lambda: dispatcher.counters["retried"] >= 2 * 50)  # the whole batch, twice
        assert dispatcher.counters["sent"] == 0 and dispatcher.snapshot()["queued"] == 50

        # Without yielding to the loop: Redis comes back and someone listens before the next attempt.
        redis.start()
        subscriber.subscribe(f"{PREFIX}__group__outage")
        assert subscriber.get_message(timeout=5)["type"] == "subscribe"

        received = []
        deadline = time.monotonic() + 15
        while len(received) < 50:
            assert time.monotonic() < deadline, f"only {len(received)} of 50 arrived"
            message = await asyncio.to_thread(subscriber.get_message, ignore_subscribe_messages=True, timeout=0.5)
            if message is not None:
                received.append(layer.deserialize(message["data"])["n"])
        assert received == list(range(50))
        await until(lambda: dispatcher.counters["sent"] == 50)
        assert dispatcher.counters["dropped"] == 0 and dispatcher.snapshot()["queued"] == 0
    finally:
        dispatcher.close()
        subscriber.close()
        redis.stop()


@pytest.mark.redis
@pytest.mark.asyncio
async def test_only_the_messages_too_old_are_dropped_from_a_batch_the_rest_is_retried(settings, caplog):
    redis = RedisServer()  # not started yet
    settings.CHANNEL_LAYERS = pubsub_layer(redis.url)
    dispatcher = Dispatcher(max_queue=100, send_timeout=1, max_age=0.5, drain_seconds=0)
    dispatcher.attach(asyncio.get_running_loop())
    try:
        with caplog.at_level(logging.WARNING, logger="superai_flow.notifications"):
            # Both submits are queued before the worker runs: one batch, of old and young messages.
            dispatcher.submit([("aging", {"type": "t.old", "n": n}) for n in range(3)])
            dispatcher.max_age = 60
            dispatcher.submit([("aging", {"type": "t.young", "n": n}) for n in range(3)])
            await until(lambda: dispatcher.counters["dropped"] == 3)
            assert dispatcher.counters["sent"] == 0 and dispatcher.snapshot()["queued"] == 3

            await asyncio.to_thread(redis.start)
            await until(lambda: dispatcher.counters["sent"] == 3)

        assert publish_calls(redis) == 3
        assert dispatcher.counters["dropped"] == 3 and dispatcher.snapshot()["queued"] == 0
        drops = [record.getMessage() for record in caplog.records if "Dropped" in record.getMessage()]
        assert len(drops) == 1 and drops[0].startswith("Dropped notification t.old to aging: gave up after")
    finally:
        dispatcher.close()
        redis.stop()


@pytest.mark.redis
@pytest.mark.asyncio
async def test_a_message_that_waited_past_its_age_behind_a_slow_send_is_dropped_not_sent_late(settings, caplog):
    """Cursors allow a message NOTIFY_MAX_AGE_SECONDS plus one send attempt (live.py): none may come later."""
    with RedisServer() as redis:
        settings.CHANNEL_LAYERS = pubsub_layer(redis.url)
        dispatcher = Dispatcher(max_queue=100, send_timeout=5, max_age=0.5, drain_seconds=0)
        dispatcher.attach(asyncio.get_running_loop())
        client = redis_py.Redis.from_url(redis.url)
        try:
            dispatcher.submit([("slow", {"type": "t.warm"})])  # the connection is made before the pause
            await until(lambda: dispatcher.counters["sent"] == 1)
            client.execute_command("CLIENT", "PAUSE", "1500", "WRITE")  # PUBLISH waits 1.5 s: a slow Redis
            with caplog.at_level(logging.WARNING, logger="superai_flow.notifications"):
                dispatcher.submit([("slow", {"type": "t.first"})])
                await asyncio.sleep(0.2)  # its send is under way, waiting for Redis
                dispatcher.submit([("slow", {"type": "t.second"})])
                await until(lambda: dispatcher.counters["sent"] + dispatcher.counters["dropped"] == 3)

            assert dispatcher.counters["sent"] == 2 and dispatcher.counters["dropped"] == 1
            assert publish_calls(redis) == 2
            dispatcher.submit([("slow", {"type": "t.after"})])  # a batch dropped whole leaves the dispatcher working
            await until(lambda: dispatcher.counters["sent"] == 3)
            drops = [record.getMessage() for record in caplog.records if "Dropped" in record.getMessage()]
            assert drops == [
                "Dropped notification t.second to slow: too old to send after 0 attempts (1 dropped so far)"
            ]
        finally:
            client.close()
            dispatcher.close()


@pytest.mark.asyncio
async def test_the_in_memory_layer_gets_the_messages_one_by_one_in_order(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    assert not hasattr(layer, "group_send_many")
    channel = await layer.new_channel()
    await layer.group_add("memory", channel)
    dispatcher = Dispatcher(max_queue=100, send_timeout=1, max_age=30, drain_seconds=0)
    dispatcher.attach(asyncio.get_running_loop())  # the in-memory layer reaches this loop's consumers only
    try:
        dispatcher.submit([("memory", {"type": "t.message", "n": n}) for n in range(50)])

        received = [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(50)]

        assert received == list(range(50))
        await until(lambda: dispatcher.counters["sent"] == 50)
    finally:
        dispatcher.close()
        await layer.group_discard("memory", channel)
