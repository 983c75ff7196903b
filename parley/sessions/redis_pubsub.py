"""``RedisPubSub``: one worker's subscriptions multiplexed on one Redis connection.

Every live voice, phone or Realtime connection subscribes to its session's channel. With
a Redis connection per subscription, a worker holding 200 calls held 200 idle sockets
(and redis-py's default pool of 100 ran out). Here a worker keeps one pub/sub
connection: ``subscribe()`` sends ``SUBSCRIBE`` on it the first time a channel is wanted
and returns once Redis confirmed it (so any message published afterwards is delivered);
one reader task hands each message to every subscription of its channel; the last
subscription of a channel to close sends ``UNSUBSCRIBE``.

The connection also listens on a private channel of its own, so redis-py's reader never
sees "no subscriptions left" and stops. When the connection is lost, every subscription
ends (its iteration stops, as a closed subscription's does) and the next ``subscribe()``
opens a new connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from parley.sessions.local import LocalSubscription

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT_S = 5.0
PING_TOKEN = "parley-subscribe"  # our PINGs' pongs, told apart from any other

__all__ = ["RedisPubSub", "RedisSubscription"]


class RedisSubscription(LocalSubscription):
    """Messages of one channel after ``subscribe()`` returned; ``close()`` also tells
    Redis when it was the channel's last subscription on this worker."""

    def __init__(self, hub: RedisPubSub, channel: str) -> None:
        super().__init__(hub.forget)
        self.channel = channel
        self.active = False  # set when Redis confirmed: messages read from then on are ours
        self._hub = hub

    async def close(self) -> None:
        if self._closed:
            return
        await super().close()
        await self._hub.unsubscribe_unused(self.channel)

    def end(self) -> None:
        """The connection is gone: stop the iteration (no Redis call)."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(self._CLOSED)


@dataclass
class _Marker:
    """A reply Redis owes us (to a SUBSCRIBE or a PING): from the moment it is read,
    every message read after it was published after the command was sent."""

    subscription: RedisSubscription | None
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def reached(self) -> None:
        if self.subscription is not None:
            self.subscription.active = True
        if not self.done.done():
            self.done.set_result(None)


class RedisPubSub:
    """See the module docstring. ``client`` is the worker's Redis client.

    A channel's first subscription sends ``SUBSCRIBE`` and becomes active at its
    confirmation; a later one (the channel is already subscribed, or being) sends
    ``PING`` and becomes active at the ``pong``: messages of the channel still on the
    wire from before are not delivered to it."""

    def __init__(self, client: aioredis.Redis, keepalive_channel: str) -> None:
        self._client = client
        self._keepalive = f"{keepalive_channel}:{uuid.uuid4().hex}"
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._channels: dict[str, set[RedisSubscription]] = {}  # wanted (active or not)
        self._subscribe_replies: dict[str, deque[_Marker]] = {}
        self._pongs: deque[_Marker] = deque()
        self._lock = asyncio.Lock()  # one SUBSCRIBE/UNSUBSCRIBE/PING/connect at a time

    @property
    def channel_count(self) -> int:
        """Channels this worker listens to (without its private one)."""
        return len(self._channels)

    async def subscribe(self, channel: str) -> RedisSubscription:
        async with self._lock:
            pubsub = await self._connected()
            subscription = RedisSubscription(self, channel)
            marker = _Marker(subscription)
            subscribers = self._channels.setdefault(channel, set())
            subscribers.add(subscription)
            try:
                if len(subscribers) == 1:
                    self._subscribe_replies.setdefault(channel, deque()).append(marker)
                    await pubsub.subscribe(channel)
                else:
                    self._pongs.append(marker)
                    await pubsub.ping(PING_TOKEN)
            except BaseException:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._channels[channel]
                raise
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                await asyncio.shield(marker.done)
        except BaseException:
            await subscription.close()
            raise
        return subscription

    def forget(self, subscription: LocalSubscription) -> None:
        assert isinstance(subscription, RedisSubscription)
        subscribers = self._channels.get(subscription.channel)
        if subscribers is not None:
            subscribers.discard(subscription)

    async def unsubscribe_unused(self, channel: str) -> None:
        async with self._lock:
            if self._channels.get(channel) or channel not in self._channels:
                return
            del self._channels[channel]
            if self._pubsub is None:
                return
            try:
                await self._pubsub.unsubscribe(channel)
            except (RedisError, OSError) as exc:
                log.warning("unsubscribing from %s failed: %s", channel, exc)

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.wait([reader])
        await self._lost()

    async def _connected(self) -> PubSub:
        if self._pubsub is not None:
            return self._pubsub
        pubsub = self._client.pubsub()
        self._pubsub = pubsub
        keepalive = _Marker(None)
        self._subscribe_replies[self._keepalive] = deque([keepalive])
        await pubsub.subscribe(self._keepalive)
        self._reader = asyncio.create_task(self._read(pubsub), name="redis-pubsub")
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
            await asyncio.shield(keepalive.done)
        return pubsub

    async def _read(self, pubsub: PubSub) -> None:
        try:
            async for reply in pubsub.listen():
                self._dispatch(reply)
        except (RedisError, OSError) as exc:
            log.warning("the pub/sub connection to Redis was lost: %s", exc)
        finally:
            if self._pubsub is pubsub:
                self._reader = None
                await self._lost()

    def _dispatch(self, reply: dict[str, Any]) -> None:
        kind, channel = reply["type"], reply.get("channel")
        if kind == "message":
            subscribers = self._channels.get(channel) if channel else None
            if not subscribers:
                return
            try:
                message = json.loads(reply["data"])
            except json.JSONDecodeError:
                log.warning("dropped a non-JSON message on %s", channel)
                return
            for subscription in subscribers:
                if subscription.active:
                    subscription.deliver(message)
        elif kind == "subscribe" and channel:
            # a reconnect's re-subscriptions find nobody waiting
            waiting = self._subscribe_replies.get(channel)
            if waiting:
                waiting.popleft().reached()
                if not waiting:
                    del self._subscribe_replies[channel]
        elif kind == "pong" and reply.get("data") == PING_TOKEN and self._pongs:
            self._pongs.popleft().reached()

    async def _lost(self) -> None:
        """End every subscription and forget the connection (the next subscribe
        opens a new one)."""
        pubsub, self._pubsub = self._pubsub, None
        for subscribers in self._channels.values():
            for subscription in subscribers:
                subscription.end()
        self._channels.clear()
        lost = ConnectionError("the pub/sub connection to Redis was lost")
        waiting = [m for ms in self._subscribe_replies.values() for m in ms] + list(self._pongs)
        for marker in waiting:
            if not marker.done.done():
                marker.done.set_exception(lost)
                marker.done.exception()  # retrieved: nobody may be waiting any more
        self._subscribe_replies.clear()
        self._pongs.clear()
        if pubsub is not None:
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            except (RedisError, OSError):
                pass
