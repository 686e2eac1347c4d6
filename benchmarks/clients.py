"""Request/reply clients for the floor and the peer (the worker has `TaskClient`)."""

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any, Self
from uuid import uuid4

import orjson
from faststream.redis import RedisBroker
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from contracts.client import plain_entry

REQUEST_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 512


class RequestRefused(RuntimeError):
    """A system answered `ok: false` to a request the benchmark expects to succeed."""


def _require_ok(reply: Any) -> None:
    if not isinstance(reply, dict) or reply.get("ok") is not True:
        raise RequestRefused(f"unexpected reply: {reply!r:.300}")


class BareClient:
    """XADD of plain entries, and one pub/sub subscription matched by correlation id."""

    def __init__(self, redis_url: str) -> None:
        self._redis = Redis.from_url(redis_url)
        self._channel = f"bench.replies.{uuid4().hex}"
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self._channel)
        self._listener = asyncio.create_task(self._listen(self._pubsub))
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._pubsub is not None:
            await self._pubsub.aclose()
        await self._redis.aclose()

    async def request(self, stream: str, body: Mapping[str, Any]) -> None:
        """Send `body` and wait for an `ok` reply."""
        correlation_id = uuid4().hex
        waiting = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = waiting
        fields = plain_entry(
            body, reply_to=self._channel, correlation_id=correlation_id
        )
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                await self._redis.xadd(stream, fields)
                reply = await waiting
        finally:
            self._pending.pop(correlation_id, None)
        _require_ok(orjson.loads(reply))

    async def _listen(self, pubsub: PubSub) -> None:
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            correlation_id = orjson.loads(message["data"])["correlation_id"]
            waiting = self._pending.get(correlation_id)
            if waiting is not None and not waiting.done():
                waiting.set_result(message["data"])


class PeerClient:
    """FastStream's own `broker.request()`: a fresh reply subscription per request."""

    def __init__(self, redis_url: str) -> None:
        # redis-py 8 pools 100 connections by default; each request holds a pub/sub
        # connection while it waits and takes another for its XADD, so 64 in flight
        # would exhaust it (MaxConnectionsError).
        self._broker = RedisBroker(redis_url, max_connections=MAX_CONNECTIONS)

    async def __aenter__(self) -> Self:
        await self._broker.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._broker.stop()

    async def request(self, stream: str, body: Mapping[str, Any]) -> None:
        """Send `body` and wait for an `ok` reply."""
        response = await self._broker.request(
            dict(body), stream=stream, timeout=REQUEST_TIMEOUT_S
        )
        _require_ok(orjson.loads(response.body))
