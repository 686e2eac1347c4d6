"""Delivery guarantees with a real Redis: duplicates, claims, dead letters, outbox."""

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from contracts import CREATE_STREAM, EVENTS_STREAM, QUERY_STREAM
from contracts.client import plain_entry
from contracts.streams import DEAD_LETTER_STREAM
from worker.repository.unit_of_work import UnitOfWork, UnitOfWorkFactory
from worker.runtime import create_groups
from worker.settings import WorkerSettings
from worker.transport.app import WorkerApp, build_app
from worker.transport.claims import Claims, Settlement
from worker.transport.consumer import CommandConsumer, ConsumerConfig
from worker.transport.departed import DepartedConsumers
from worker.transport.entries import Delivery, WireFormat
from worker.transport.relay import EventRelay

GROUP = "tasks-worker"
PEGASUS = "hf://google/pegasus-xsum"

StartWorker = Callable[..., Awaitable[WorkerApp]]


@pytest.fixture
async def start_worker(
    worker_settings: WorkerSettings,
) -> AsyncIterator[StartWorker]:
    """Start worker apps with settings overrides; all are stopped at teardown."""
    started: list[WorkerApp] = []

    async def start(**overrides: Any) -> WorkerApp:
        app = build_app(worker_settings.model_copy(update=overrides))
        await app.start()
        started.append(app)
        return app

    yield start

    for app in started:
        await app.stop()


class Replies:
    """One pub/sub subscription collecting replies by correlation id."""

    def __init__(self, redis: Redis, channel: str) -> None:
        self.pubsub = redis.pubsub()
        self.channel = channel

    async def __aenter__(self) -> "Replies":
        await self.pubsub.subscribe(self.channel)
        await self.pubsub.get_message(timeout=1.0)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.pubsub.aclose()

    async def next(self, timeout_s: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await self.pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=timeout_s
                )
                if message is not None:
                    reply: dict[str, Any] = json.loads(message["data"])
                    return reply


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0
) -> None:
    async with asyncio.timeout(timeout_s):
        # Polls Redis or the database, which have nothing to await on.
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def create_body(name: str) -> dict[str, Any]:
    return {"name": name, "models": [PEGASUS]}


async def pending_count(redis: Redis, stream: str) -> int:
    summary = await redis.xpending(stream, GROUP)
    return int(summary["pending"])


async def test_a_republished_command_changes_state_once_and_is_answered_alike(
    start_worker: StartWorker, redis: Redis, new_unit_of_work: Callable[[], UnitOfWork]
) -> None:
    await start_worker()
    entry = plain_entry(
        create_body("xsum"), reply_to="replies.dup", message_id="retry-me"
    )

    async with Replies(redis, "replies.dup") as replies:
        await redis.xadd(CREATE_STREAM, entry)
        first = await replies.next()
        await redis.xadd(CREATE_STREAM, entry)
        second = await replies.next()

    assert first["ok"] is True
    assert second == first
    await wait_for(lambda: _outbox_empty(new_unit_of_work))
    assert await redis.xlen(EVENTS_STREAM) == 1
    async with new_unit_of_work() as uow:
        assert await uow.tasks.count() == 1


async def _outbox_empty(new_unit_of_work: Callable[[], UnitOfWork]) -> bool:
    async with new_unit_of_work() as uow:
        return not await uow.outbox.oldest(1)


async def _stream_length(redis: Redis, stream: str, at_least: int) -> bool:
    return int(await redis.xlen(stream)) >= at_least


async def test_a_malformed_entry_is_dead_lettered_with_its_fields_and_acked(
    start_worker: StartWorker, redis: Redis
) -> None:
    await start_worker()

    async with Replies(redis, "replies.poison") as replies:
        entry_id = await redis.xadd(
            CREATE_STREAM, {"data": "{not json", "reply_to": "replies.poison"}
        )
        reply = await replies.next()

    assert reply["error"]["code"] == "malformed"
    ((_, dead),) = await redis.xrange(DEAD_LETTER_STREAM)
    assert dead[b"data"] == b"{not json"
    assert dead[b"reply_to"] == b"replies.poison"
    assert dead[b"dead_letter.stream"] == CREATE_STREAM.encode()
    assert dead[b"dead_letter.entry_id"] == entry_id
    assert dead[b"dead_letter.code"] == b"malformed"
    assert dead[b"dead_letter.delivery_count"] == b"1"
    assert await pending_count(redis, CREATE_STREAM) == 0


async def test_entries_left_by_a_dead_consumer_are_claimed_and_answered(
    start_worker: StartWorker, redis: Redis
) -> None:
    await create_groups(redis, GROUP)
    entry = plain_entry(create_body("orphan"), reply_to="replies.claim")

    async with Replies(redis, "replies.claim") as replies:
        await redis.xadd(CREATE_STREAM, entry)
        # A consumer reads the entry and dies before acknowledging it.
        await redis.xreadgroup(GROUP, "crashed-consumer", {CREATE_STREAM: ">"})
        await start_worker(claim_idle_ms=200, claim_interval_s=0.1)
        reply = await replies.next()

    assert reply["ok"] is True and reply["result"]["name"] == "orphan"
    assert await pending_count(redis, CREATE_STREAM) == 0


async def test_own_pending_entries_are_finished_on_start(
    start_worker: StartWorker, redis: Redis
) -> None:
    await create_groups(redis, GROUP)
    await redis.xadd(CREATE_STREAM, plain_entry(create_body("left-over")))
    await redis.xreadgroup(GROUP, "steady-name", {CREATE_STREAM: ">"})

    await start_worker(consumer="steady-name")

    # Finished inside startup, before any new entry is read.
    assert await pending_count(redis, CREATE_STREAM) == 0
    assert await redis.xlen(DEAD_LETTER_STREAM) == 0


async def test_an_entry_delivered_too_often_is_dead_lettered_not_applied(
    start_worker: StartWorker, redis: Redis, new_unit_of_work: Callable[[], UnitOfWork]
) -> None:
    await create_groups(redis, GROUP)
    entry_id = await redis.xadd(CREATE_STREAM, plain_entry(create_body("cursed")))
    await redis.xreadgroup(GROUP, "crashed-consumer", {CREATE_STREAM: ">"})
    await redis.xclaim(
        CREATE_STREAM, GROUP, "crashed-consumer", 0, [entry_id], retrycount=9
    )

    await start_worker(claim_idle_ms=100, claim_interval_s=0.1, max_deliveries=5)
    await wait_for(lambda: _stream_length(redis, DEAD_LETTER_STREAM, at_least=1))

    ((_, dead),) = await redis.xrange(DEAD_LETTER_STREAM)
    assert dead[b"dead_letter.code"] == b"internal"
    assert int(dead[b"dead_letter.delivery_count"]) > 5
    async with new_unit_of_work() as uow:
        assert await uow.tasks.get_by_name("cursed") is None
    assert await pending_count(redis, CREATE_STREAM) == 0


async def test_events_left_in_the_outbox_are_relayed_on_start(
    start_worker: StartWorker, redis: Redis, new_unit_of_work: Callable[[], UnitOfWork]
) -> None:
    event_ids = [uuid4() for _ in range(3)]
    async with new_unit_of_work() as uow:
        for event_id in event_ids:
            payload = json.dumps({"event_id": str(event_id)})
            uow.outbox.stage(event_id, EVENTS_STREAM, payload, datetime.now(UTC))
        await uow.commit()

    await start_worker()
    await wait_for(lambda: _stream_length(redis, EVENTS_STREAM, at_least=3))

    relayed = [
        json.loads(fields[b"data"]) for _, fields in await redis.xrange(EVENTS_STREAM)
    ]
    assert [event["event_id"] for event in relayed] == [str(e) for e in event_ids]
    await wait_for(lambda: _outbox_empty(new_unit_of_work))


async def test_settling_leaves_an_entry_claimed_meanwhile_to_its_new_owner(
    redis: Redis,
) -> None:
    await redis.xgroup_create(CREATE_STREAM, GROUP, id="0", mkstream=True)
    kept = await redis.xadd(CREATE_STREAM, {"data": "{}"})
    stolen = await redis.xadd(CREATE_STREAM, {"data": "{}"})
    await redis.xreadgroup(GROUP, "frozen", {CREATE_STREAM: ">"})
    await redis.xclaim(CREATE_STREAM, GROUP, "thief", 0, [stolen])
    claims = Claims(redis, GROUP, "frozen", claim_idle_ms=30_000)

    async with Replies(redis, "replies.settle") as replies:
        settled = await claims.settle(
            CREATE_STREAM,
            DEAD_LETTER_STREAM,
            100,
            [
                Settlement(kept.decode(), "replies.settle", b'{"n": 1}', {"f": "v"}),
                Settlement(stolen.decode(), "replies.settle", b'{"n": 2}'),
            ],
        )
        first = await replies.next()
        with pytest.raises(TimeoutError):
            await replies.next(timeout_s=0.3)

    assert settled == {kept.decode()}
    assert first == {"n": 1}
    dead = await redis.xrange(DEAD_LETTER_STREAM)
    assert [fields for _, fields in dead] == [{b"f": b"v"}]
    pending = await redis.xpending_range(CREATE_STREAM, GROUP, "-", "+", 10)
    assert [(entry["message_id"], entry["consumer"]) for entry in pending] == [
        (stolen, b"thief")
    ]


@pytest.mark.postgres
async def test_a_table_locked_by_hand_holds_a_batch_back_with_a_warning(
    redis_url: str, redis: Redis, postgres_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = WorkerSettings(
        redis_url=redis_url,
        database_url=postgres_schema,
        consumer="locked-out",
        embedded_redis=False,
        batch_wait_ms=20,
        lock_timeout_ms=100,
    )
    app = build_app(settings)
    await app.start()
    admin = make_url(postgres_schema).set(drivername="postgresql")
    locker = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        async with Replies(redis, "replies.locked") as replies:
            lock = locker.transaction()
            await lock.start()
            await locker.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
            entry = plain_entry(create_body("locked-out"), reply_to="replies.locked")
            await redis.xadd(CREATE_STREAM, entry)
            with pytest.raises(TimeoutError):
                await replies.next(timeout_s=1.0)
            await lock.rollback()
            reply = await replies.next()
    finally:
        await locker.close()
        await app.stop()

    assert reply["ok"] is True
    waits = [
        record.getMessage()
        for record in caplog.records
        if record.levelname == "WARNING" and "lock timeout" in record.getMessage()
    ]
    assert waits, "no warning said the batch waited for a lock"


async def test_departed_consumers_are_forgotten_unless_they_hold_entries(
    redis: Redis,
) -> None:
    await redis.xgroup_create(CREATE_STREAM, GROUP, id="0", mkstream=True)
    await redis.xadd(CREATE_STREAM, {"data": "{}"})
    await redis.xreadgroup(GROUP, "crashed-holding", {CREATE_STREAM: ">"})
    await redis.xgroup_createconsumer(CREATE_STREAM, GROUP, "restarted-empty")
    await redis.xgroup_createconsumer(CREATE_STREAM, GROUP, "this-worker")
    await asyncio.sleep(0.1)

    forgotten = await DepartedConsumers(redis, GROUP, "this-worker").forget(
        [CREATE_STREAM], idle_ms=50
    )

    consumers = await redis.xinfo_consumers(CREATE_STREAM, GROUP)
    assert forgotten == 1
    assert {consumer["name"] for consumer in consumers} == {
        b"crashed-holding",
        b"this-worker",
    }
    assert await pending_count(redis, CREATE_STREAM) == 1


# A correlation id that would forge a worker log line and clear the terminal.
HOSTILE_ID = (
    "c-1\n2026-03-14 15:09:26,000 ERROR   worker.transport.consumer: forged\x1b[2J"
)


def assert_one_line_each(caplog: pytest.LogCaptureFixture) -> None:
    """No log message breaks its line or drives the terminal."""
    messages = [record.getMessage() for record in caplog.records]
    assert messages
    for message in messages:
        assert not {"\n", "\r", "\x1b"} & set(message), message


async def test_a_hostile_correlation_id_cannot_forge_a_log_line(
    start_worker: StartWorker, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await start_worker()
    create = plain_entry(
        create_body("hostile"),
        reply_to="replies.hostile",
        correlation_id=HOSTILE_ID,
        message_id="m-1\r\nforged",
        source="svc\nforged",
    )
    listing = plain_entry(
        {"kind": "list"}, reply_to="replies.hostile", correlation_id=HOSTILE_ID
    )

    async with Replies(redis, "replies.hostile") as replies:
        create_id = await redis.xadd(CREATE_STREAM, create)
        refused = await replies.next()
        list_id = await redis.xadd(QUERY_STREAM, listing)
        refused_query = await replies.next()

    assert refused["correlation_id"] == create_id.decode()
    assert refused["error"]["code"] == "malformed"
    assert refused_query["correlation_id"] == list_id.decode()
    assert_one_line_each(caplog)


async def test_ids_that_reach_the_consumer_unchecked_are_logged_escaped(
    redis: Redis,
    new_unit_of_work: UnitOfWorkFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="worker")
    await create_groups(redis, GROUP)
    await redis.xadd(QUERY_STREAM, {"data": '{"kind": "list"}'})
    await redis.xadd(QUERY_STREAM, {"data": "not json"})
    ((_, entries),) = await redis.xreadgroup(GROUP, "steady", {QUERY_STREAM: ">"})
    consumer = CommandConsumer(
        redis,
        new_unit_of_work,
        EventRelay(redis, new_unit_of_work, events_maxlen=100),
        ConsumerConfig(GROUP, "steady", 5, 100, claim_idle_ms=30_000),
    )
    # Built by hand: `read_entry` would refuse these ids before any log line.
    deliveries = [
        Delivery(
            stream=QUERY_STREAM,
            entry_id=entry_id.decode(),
            format=WireFormat.PLAIN,
            body=fields[b"data"],
            reply_to="replies.\nforged",
            correlation_id=HOSTILE_ID,
            message_id=HOSTILE_ID,
            fields=fields,
        )
        for entry_id, fields in entries
    ]

    await consumer.consume(deliveries)

    assert len([r for r in caplog.records if "handled" in r.getMessage()]) == 2
    assert_one_line_each(caplog)
