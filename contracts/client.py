"""`TaskClient`: an asyncio client for the tasks worker, over Redis.

Requests are plain stream entries, so the worker answers with plain JSON. Every
client listens on one reply channel of its own and matches replies to requests by
correlation id, so any number of requests can be in flight on one subscription.
"""

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar
from uuid import UUID, uuid4

import orjson
from pydantic import BaseModel, TypeAdapter
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from contracts.errors import RequestTimeout, error_from_reply
from contracts.events import EventPage, EventType
from contracts.replies import DeletedTask, ErrorReply, ModelList, Task, TaskPage
from contracts.streams import (
    CORRELATION_ID_FIELD,
    CREATE_STREAM,
    DATA_FIELD,
    DELETE_STREAM,
    MESSAGE_ID_FIELD,
    QUERY_STREAM,
    REPLY_TO_FIELD,
    SOURCE_FIELD,
)

logger = logging.getLogger(__name__)

ResultT = TypeVar("ResultT", bound=BaseModel)

DEFAULT_TIMEOUT_S = 5.0
REPLY_CHANNEL_PREFIX = "tasks.replies."

_ERROR_REPLY = TypeAdapter(ErrorReply)


def plain_entry(
    body: Mapping[str, Any],
    *,
    reply_to: str = "",
    correlation_id: str = "",
    message_id: str = "",
    source: str = "",
) -> dict[FieldT, EncodableT]:
    """The fields of a plain stream entry carrying `body`."""
    fields: dict[FieldT, EncodableT] = {DATA_FIELD: orjson.dumps(body)}
    if reply_to:
        fields[REPLY_TO_FIELD] = reply_to
    if correlation_id:
        fields[CORRELATION_ID_FIELD] = correlation_id
    if message_id:
        fields[MESSAGE_ID_FIELD] = message_id
    if source:
        fields[SOURCE_FIELD] = source
    return fields


class _EntryWriter:
    """Appends entries for many concurrent callers in pipelines on one connection.

    Callers queue while a pipeline is in flight; the next pipeline takes them all, so
    a burst of requests costs a few round trips instead of one connection each.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._queued: list[tuple[str, dict[FieldT, EncodableT], asyncio.Future[None]]]
        self._queued = []
        self._flusher: asyncio.Task[None] | None = None

    async def append(self, stream: str, fields: dict[FieldT, EncodableT]) -> None:
        written = asyncio.get_running_loop().create_future()
        self._queued.append((stream, fields, written))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await written

    async def _flush(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for stream, fields, _ in batch:
                        pipe.xadd(stream, fields)
                    results = await pipe.execute(raise_on_error=False)
            except Exception as error:
                results = [error] * len(batch)
            for (_, _, written), result in zip(batch, results, strict=True):
                if written.done():
                    continue
                if isinstance(result, Exception):
                    written.set_exception(result)
                else:
                    written.set_result(None)


class TaskClient:
    """Use as `async with TaskClient.from_url(url) as tasks:`.

    Each call raises the `TaskRequestError` subclass of the reply's error code, or
    `RequestTimeout` when no reply arrives within `timeout_s`.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        source: str = "",
    ) -> None:
        self.redis = redis
        self.timeout_s = timeout_s
        self.source = source
        self.reply_channel = f"{REPLY_CHANNEL_PREFIX}{uuid4().hex}"
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self._writer = _EntryWriter(redis)
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None

    @classmethod
    def from_url(
        cls, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, source: str = ""
    ) -> Self:
        """A client on its own connection pool.

        `source` names the calling service in the audit log of its commands.
        """
        return cls(Redis.from_url(url), timeout_s=timeout_s, source=source)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Subscribe to the reply channel; requests wait for this to be confirmed."""
        self._pubsub = self.redis.pubsub()
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._subscribe(self._pubsub)
        except TimeoutError:
            raise RequestTimeout(
                f"Redis did not confirm the reply subscription within {self.timeout_s}s"
            ) from None
        self._listener = asyncio.create_task(self._listen(self._pubsub))

    async def _subscribe(self, pubsub: PubSub) -> None:
        await pubsub.subscribe(self.reply_channel)
        while True:
            message = await pubsub.get_message(timeout=self.timeout_s)
            if message is not None and message["type"] == "subscribe":
                return

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._pubsub is not None:
            await self._pubsub.aclose()
        for waiting in self._pending.values():
            waiting.cancel()
        self._pending.clear()
        await self.redis.aclose()

    async def create(
        self, name: str, models: Sequence[str], description: str = ""
    ) -> Task:
        """Create a task; raises `TaskConflictError` when the name is taken."""
        body = {"name": name, "description": description, "models": list(models)}
        return await self.request(CREATE_STREAM, body, Task)

    async def delete(self, task_id: UUID | str) -> DeletedTask:
        """Delete a task; raises `TaskNotFoundError` for an unknown id."""
        return await self.request(DELETE_STREAM, {"id": str(task_id)}, DeletedTask)

    async def get(self, task_id: UUID | str) -> Task:
        body = {"kind": "get", "id": str(task_id)}
        return await self.request(QUERY_STREAM, body, Task)

    async def list(self, skip: int = 0, limit: int = 100) -> TaskPage:
        body = {"kind": "list", "skip": skip, "limit": limit}
        return await self.request(QUERY_STREAM, body, TaskPage)

    async def models(self, name: str) -> ModelList:
        """The model URIs of the task with this name."""
        body = {"kind": "models", "name": name}
        return await self.request(QUERY_STREAM, body, ModelList)

    async def history(self, task_id: UUID | str) -> EventPage:
        """The audited events of one task, rejected deletes of its id included."""
        body = {"kind": "history", "id": str(task_id)}
        return await self.request(QUERY_STREAM, body, EventPage)

    async def events(
        self,
        after_seq: int = 0,
        limit: int = 100,
        event_type: EventType | str | None = None,
    ) -> EventPage:
        """A page of the audit log after `after_seq`, optionally of one type."""
        body: dict[str, Any] = {"kind": "events", "after_seq": after_seq}
        body["limit"] = limit
        if event_type is not None:
            body["type"] = str(event_type)
        return await self.request(QUERY_STREAM, body, EventPage)

    async def send_create(
        self,
        name: str,
        models: Sequence[str],
        description: str = "",
        message_id: str = "",
    ) -> str:
        """Publish a create without waiting; returns its message id."""
        body = {"name": name, "description": description, "models": list(models)}
        return await self.send(CREATE_STREAM, body, message_id=message_id)

    async def send_delete(self, task_id: UUID | str, message_id: str = "") -> str:
        """Publish a delete without waiting; returns its message id."""
        return await self.send(
            DELETE_STREAM, {"id": str(task_id)}, message_id=message_id
        )

    async def send(
        self, stream: str, body: Mapping[str, Any], message_id: str = ""
    ) -> str:
        """Append a command that wants no reply; the id makes a retry harmless."""
        message_id = message_id or uuid4().hex
        entry = plain_entry(body, message_id=message_id, source=self.source)
        await self._writer.append(stream, entry)
        return message_id

    async def request(
        self,
        stream: str,
        body: Mapping[str, Any],
        result_type: type[ResultT],
        timeout_s: float | None = None,
    ) -> ResultT:
        """Publish `body` on `stream` and wait for its reply."""
        reply = orjson.loads(await self.request_raw(stream, body, timeout_s))
        if reply.get("ok") is True:
            return result_type.model_validate(reply["result"])
        raise error_from_reply(_ERROR_REPLY.validate_python(reply).error)

    async def request_raw(
        self,
        stream: str,
        body: Mapping[str, Any],
        timeout_s: float | None = None,
    ) -> bytes:
        """The reply's JSON as it arrived."""
        if self._listener is None:
            raise RuntimeError("start the client first (`async with` or `start()`)")

        correlation_id = uuid4().hex
        waiting: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = waiting
        entry = plain_entry(
            body,
            reply_to=self.reply_channel,
            correlation_id=correlation_id,
            message_id=correlation_id,
            source=self.source,
        )
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                await self._writer.append(stream, entry)
                return await waiting
        except TimeoutError:
            raise RequestTimeout(
                f"no reply on {stream} within {timeout_s}s; is a worker running "
                "against this Redis?"
            ) from None
        finally:
            self._pending.pop(correlation_id, None)

    async def _listen(self, pubsub: PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=1.0
                )
            except (RedisError, OSError) as error:
                logger.warning("reply channel lost (%s); resubscribing", error)
                await asyncio.sleep(0.5)
                continue
            if message is not None:
                self._deliver(message["data"])

    def _deliver(self, data: bytes) -> None:
        try:
            correlation_id = str(orjson.loads(data)["correlation_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            logger.warning("ignored a reply without a correlation id: %.200r", data)
            return
        waiting = self._pending.get(correlation_id)
        if waiting is not None and not waiting.done():
            waiting.set_result(data)
