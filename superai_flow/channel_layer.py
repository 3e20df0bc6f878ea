"""channels-redis's pub/sub layer, plus sending many group messages in one Redis round trip, and a way
to forget a consumer's channel.

`group_send_many` is what the notification dispatcher (superai_flow/notifications.py) uses to keep
up under load: instead of one PUBLISH round trip (and event-loop iteration) per message, a batch goes
out as one pipeline of PUBLISH commands per shard, without MULTI/EXEC. `clean_channel` is what the
WebSocket consumers (task_outputs/consumers.py) call when they end. Everything else is the parent
layer's, unchanged.
"""

from __future__ import annotations

from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer


class BatchingRedisPubSubChannelLayer(RedisPubSubChannelLayer):
    async def group_send_many(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        """Send each (group, message) as `group_send` would, in order, in one round trip per shard.

        Publishing works as in `group_send`: the same serialization, the shard's own Redis client and
        lock, and so the same reconnection after Redis restarts (its connection pool replaces broken
        connections). Shards are sent to one after the other, each in the order of `messages`. On an
        exception nothing is known about which messages went out (a shard sent before a failing one
        did, and even a failed pipeline may have been executed by Redis): a caller that tries again
        delivers at least once.
        """
        loop_layer = self._get_layer()
        by_shard: dict[Any, list[tuple[str, bytes]]] = {}
        for group, message in messages:
            group_channel = loop_layer._get_group_channel_name(group)
            shard = loop_layer._get_shard(group_channel)
            by_shard.setdefault(shard, []).append((group_channel, self.serialize(message)))
        for shard, publishes in by_shard.items():
            async with shard._lock:
                shard._ensure_redis()
                pipeline = shard._redis.pipeline(transaction=False)
                for group_channel, payload in publishes:
                    pipeline.publish(group_channel, payload)
                await pipeline.execute()

    async def clean_channel(self, channel: str) -> None:
        """Forget `channel` (from `new_channel`) once its consumer has ended: its queue and its subscription.

        The parent layer forgets a channel only when a `receive` waiting on it is cancelled. A consumer
        that ends while its last `receive` has returned a message it has not handled yet (one busy with a
        long replay under steady traffic nearly always has one) leaves the queue behind for good, with the
        channel's Redis subscription: a few kilobytes per connection, and, while the channel was still in
        a group, every later message of that group (django/channels_redis#276, where upstream proposes a
        method of this name). Safe to call for a channel already forgotten.
        """
        loop_layer = self._get_layer()
        if loop_layer.channels.pop(channel, None) is not None:
            await loop_layer._get_shard(channel).unsubscribe(channel)
