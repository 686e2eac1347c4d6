"""The FastStream application: one batch subscriber per command stream."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from faststream import FastStream
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.message import BatchStreamMessage
from faststream.redis.subscriber.usecases.stream_subscriber import (
    StreamBatchSubscriber,
)
from faststream.specification import AsyncAPI
from pydantic import TypeAdapter, WithJsonSchema

from contracts import (
    CREATE_STREAM,
    DELETE_STREAM,
    EVENTS_STREAM,
    QUERY_STREAM,
    CreateTask,
    DeleteTask,
    TaskEvent,
    TaskQuery,
)
from worker.runtime import WorkerRuntime
from worker.settings import WorkerSettings
from worker.transport.entries import Delivery, read_entry

VERSION = "0.1.0"

DESCRIPTION = """\
A registry of tasks (named lists of model URIs), driven over Redis streams.

Publish a command as a stream entry, either with FastStream (`broker.publish`,
`broker.request`) or as a plain entry any Redis client can write: a `data` field
holding the JSON body, plus optional `reply_to` (a pub/sub channel), `correlation_id`
and `message_id` fields. Each entry that names `reply_to` gets exactly one reply there,
in the format of the request: `{"correlation_id", "ok": true, "result"}` or
`{"correlation_id", "ok": false, "error": {"code", "message", "details"}}`.
"""


def documented_as(body_type: Any) -> WithJsonSchema:
    """Document a handler's batch as the JSON Schema of one entry's body.

    The handler receives decoded deliveries and validates each body itself (so that a
    bad entry fails alone); the AsyncAPI page should still show what to publish.
    """
    schema = TypeAdapter(body_type).json_schema()
    definitions = schema.pop("$defs", {})
    return WithJsonSchema(_inline(schema, definitions))


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            return _inline(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {key: _inline(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    return node


BatchParser = Callable[[BatchStreamMessage], Awaitable[StreamMessage[Any]]]


async def parse_batch(
    batch: BatchStreamMessage, faststream_parser: BatchParser
) -> StreamMessage[Any]:
    """FastStream parser: the batch as read, its entries left for the decoder.

    FastStream's own batch parser decodes every field of every entry as UTF-8, so one
    entry holding other bytes would fail the whole batch, unanswered until the claim
    of abandoned entries. It builds the message here from the batch without its
    entries (ids, stream, a correlation id of its own for its log lines), and
    `read_deliveries` then reads each entry alone from the raw batch.
    """
    message = await faststream_parser({**batch, "data": []})
    message.raw_message = batch
    return message


async def read_deliveries(message: StreamMessage[Any]) -> list[Delivery]:
    """FastStream decoder: the entries of a batch, each in its own wire format."""
    batch = message.raw_message
    stream = str(batch["channel"])
    return [
        read_entry(stream, entry_id.decode(), fields)
        for entry_id, fields in zip(batch["message_ids"], batch["data"], strict=True)
    ]


class WorkerApp(FastStream):
    """FastStream's app, which also tells when something inside asked it to exit.

    FastStream stops a subscriber for good on some errors (its consumer group is gone)
    and asks the app to exit; `worker.serve` then builds and starts a fresh one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exit_requested = asyncio.Event()

    def exit(self) -> None:
        super().exit()
        self.exit_requested.set()


def build_app(settings: WorkerSettings) -> WorkerApp:
    """The worker app; it connects to nothing until it starts."""
    runtime = WorkerRuntime(settings)
    broker = RedisBroker(
        settings.redis_url,
        logger=logging.getLogger("worker.broker"),
        # FastStream logs every message received and processed: DEBUG, not INFO.
        log_level=logging.DEBUG,
        # How long stopping waits for the batch in hand to be committed and acked.
        graceful_timeout=settings.shutdown_timeout_s,
    )

    def subscriber(stream: str, description: str) -> StreamBatchSubscriber:
        # Acknowledged by the consumer itself, after commit and replies.
        return broker.subscriber(
            stream=StreamSub(
                stream,
                group=settings.group,
                consumer=settings.consumer,
                batch=True,
                max_records=settings.batch_size,
                polling_interval=settings.batch_wait_ms,
            ),
            parser=parse_batch,
            decoder=read_deliveries,
            ack_policy=AckPolicy.MANUAL,
            no_reply=True,
            description=description,
        )

    @subscriber(
        CREATE_STREAM,
        "Create a task. Replies with the task, or `validation_error` "
        "or `conflict` (the name is taken). Emits `task.created`.",
    )
    async def create_tasks(
        deliveries: Annotated[list[Delivery], documented_as(CreateTask)],
    ) -> None:
        await runtime.consumer.consume(deliveries)

    @subscriber(
        DELETE_STREAM,
        'Delete a task by id. Replies with `{"id"}` or `not_found`. '
        "Emits `task.deleted`.",
    )
    async def delete_tasks(
        deliveries: Annotated[list[Delivery], documented_as(DeleteTask)],
    ) -> None:
        await runtime.consumer.consume(deliveries)

    @subscriber(
        QUERY_STREAM,
        "Read the registry: `get` (the task or `not_found`), `list` "
        '(`{"total", "items"}`), `models` (`{"total", "items"}` of URIs).',
    )
    async def answer_queries(
        deliveries: Annotated[list[Delivery], documented_as(TaskQuery)],
    ) -> None:
        await runtime.consumer.consume(deliveries)

    # Documentation only: the outbox relay appends these entries itself, as a plain
    # `data` field that XRANGE readers can parse without FastStream.
    broker.publisher(
        stream=EVENTS_STREAM,
        schema=TaskEvent,
        description="One entry per change: a `data` field holding the event JSON. "
        f"Capped near {settings.events_maxlen} entries (TASKS_EVENTS_MAXLEN).",
    )

    return WorkerApp(
        broker,
        logger=logging.getLogger("worker.app"),
        on_startup=[runtime.start],
        after_shutdown=[runtime.stop],
        specification=AsyncAPI(
            title="tasks-worker", version=VERSION, description=DESCRIPTION
        ),
    )
