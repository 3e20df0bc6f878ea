"""With REDIS_URL set, the channel layer is Redis, and messages cross it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError

from superai_flow.channel_layer import BatchingRedisPubSubChannelLayer
from tests.e2e.servers import RedisServer


@pytest.mark.redis
def test_the_redis_channel_layer_delivers_group_messages():
    layer = get_channel_layer()
    assert type(layer) is BatchingRedisPubSubChannelLayer  # channels-redis's pub/sub layer, plus group_send_many
    group = f"test.{uuid.uuid4().hex}"

    async def round_trip():
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        try:
            await layer.group_send(group, {"type": "probe.message", "n": 1})
            first = await layer.receive(channel)
            await layer.group_send_many([(group, {"type": "probe.message", "n": n}) for n in (2, 3)])
            return [first, await layer.receive(channel), await layer.receive(channel)]
        finally:
            await layer.group_discard(group, channel)

    assert async_to_sync(round_trip)() == [{"type": "probe.message", "n": n} for n in (1, 2, 3)]


@pytest.mark.redis
@pytest.mark.asyncio
async def test_group_send_many_keeps_the_order_of_each_group_across_shards():
    # Two shards (on the same server): the groups below hash to different ones.
    layer = BatchingRedisPubSubChannelLayer(hosts=[settings.REDIS_URL] * 2, prefix=f"shards{uuid.uuid4().hex}")
    loop_layer = layer._get_layer()
    groups: dict[int, str] = {}
    for n in range(100):
        group = f"g{n}"
        groups.setdefault(id(loop_layer._get_shard(loop_layer._get_group_channel_name(group))), group)
    assert len(groups) == 2
    channels = {}
    for group in groups.values():
        channels[group] = await layer.new_channel()
        await layer.group_add(group, channels[group])
    try:
        messages = [(group, {"type": "t.message", "n": n}) for n in range(100) for group in groups.values()]

        await layer.group_send_many(messages)

        for group, channel in channels.items():
            received = [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(100)]
            assert received == list(range(100)), group
    finally:
        for group, channel in channels.items():
            await layer.group_discard(group, channel)
        await layer.flush()


@pytest.mark.redis
@pytest.mark.asyncio
async def test_group_send_many_reconnects_after_a_redis_restart_like_group_send():
    redis = RedisServer().start()
    layer = BatchingRedisPubSubChannelLayer(hosts=[redis.url], prefix="restart")
    try:
        await layer.group_send_many([("g", {"type": "t.before"})])  # the shard's connection is open
        await asyncio.to_thread(redis.stop)
        with pytest.raises(RedisConnectionError):
            await layer.group_send_many([("g", {"type": "t.during"})])
        await asyncio.to_thread(redis.start)
        # Listen on the restarted server with a fresh subscriber, then send again on the same layer.
        listener = BatchingRedisPubSubChannelLayer(hosts=[redis.url], prefix="restart")
        channel = await listener.new_channel()
        await listener.group_add("g", channel)
        await listener.group_send("g", {"type": "t.probe"})
        assert (await asyncio.wait_for(listener.receive(channel), 5))["type"] == "t.probe"

        await layer.group_send_many([("g", {"type": "t.after", "n": n}) for n in range(3)])

        received = [await asyncio.wait_for(listener.receive(channel), 5) for _ in range(3)]
        assert received == [{"type": "t.after", "n": n} for n in range(3)]
        await listener.group_discard("g", channel)
        await listener.flush()
    finally:
        await layer.flush()
        redis.stop()
