"""With REDIS_URL set, the channel layer is Redis, and messages cross it."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


@pytest.mark.redis
def test_the_redis_channel_layer_delivers_group_messages():
    layer = get_channel_layer()
    assert type(layer).__module__ == "channels_redis.pubsub"
    group = f"test.{uuid.uuid4().hex}"

    async def round_trip():
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        try:
            await layer.group_send(group, {"type": "probe.message", "n": 1})
            return await layer.receive(channel)
        finally:
            await layer.group_discard(group, channel)

    assert async_to_sync(round_trip)() == {"type": "probe.message", "n": 1}
