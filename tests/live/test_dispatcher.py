"""The background dispatcher: bounded, never blocking writers, retrying, dropping loudly, draining at exit."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time

import pytest
from channels.layers import get_channel_layer

from superai_flow.notifications import Dispatcher
from tests.e2e.servers import RedisServer, free_port


def pubsub_layer(url: str) -> dict:
    config = {"hosts": [{"address": url, "socket_connect_timeout": 1}], "prefix": "dispatcher_test"}
    return {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": config}}


def wait_for(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_messages_to_an_unreachable_layer_are_retried_then_dropped_and_counted(settings, caplog):
    settings.CHANNEL_LAYERS = pubsub_layer(f"redis://127.0.0.1:{free_port()}/0")
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
async def test_sends_resume_by_themselves_when_redis_comes_back(settings):
    redis = RedisServer().start()
    settings.CHANNEL_LAYERS = pubsub_layer(redis.url)
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
async def test_what_is_queued_at_exit_is_drained(settings):
    redis = RedisServer().start()
    settings.CHANNEL_LAYERS = pubsub_layer(redis.url)
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
