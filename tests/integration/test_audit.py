"""The audit log on real Redis and both databases: order, history, tamper evidence."""

import asyncio
import json
import sys
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from faststream import FastStream
from redis.asyncio import Redis
from sqlalchemy import text

from contracts import CREATE_STREAM, EVENTS_STREAM, EventType, TaskEvent
from contracts.client import TaskClient
from contracts.errors import TaskConflictError, TaskNotFoundError
from worker.audit.export import export_events
from worker.audit.reconcile import reconcile
from worker.audit.verify import verify_chain, verify_stream
from worker.repository.audit import EventDraft
from worker.repository.database import create_engine
from worker.repository.unit_of_work import UnitOfWorkFactory
from worker.settings import WorkerSettings
from worker.transport.app import build_app

BART = "hf://facebook/bart-large-cnn"
EVENTS_MAXLEN = 100_000


async def settled(new_unit_of_work: UnitOfWorkFactory) -> None:
    """Wait until every logged event has been relayed to the stream."""
    async with asyncio.timeout(10):
        while True:
            async with new_unit_of_work() as uow:
                if not await uow.outbox.oldest(1):
                    return
            await asyncio.sleep(0.02)


async def execute(database_url: str, statement: str, **values: Any) -> None:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(text(statement), values)
    await engine.dispose()


@pytest.fixture
async def logged(
    worker: FastStream, redis_url: str, new_unit_of_work: UnitOfWorkFactory
) -> list[str]:
    """A small log: four creates, a refused create, a delete; returns task ids."""
    async with TaskClient.from_url(redis_url, source="svc-registry") as client:
        tasks = [await client.create(f"task-{n}", [BART]) for n in range(4)]
        with pytest.raises(TaskConflictError):
            await client.create("task-0", [BART])
        await client.delete(tasks[1].id)
    await settled(new_unit_of_work)
    return [str(task.id) for task in tasks]


async def test_changes_and_refusals_are_logged_in_order_with_their_source(
    worker: FastStream, redis: Redis, redis_url: str
) -> None:
    async with TaskClient.from_url(redis_url, source="svc-a") as client:
        task = await client.create("summarization", [BART])
        with pytest.raises(TaskConflictError):
            await client.create("summarization", [BART])
        with pytest.raises(TaskNotFoundError):
            await client.delete(uuid4())
        await redis.xadd(CREATE_STREAM, {"data": "not json", "source": "svc-go"})
        await client.delete(task.id)
        async with asyncio.timeout(5):
            while len((page := await client.events()).items) < 5:  # noqa: ASYNC110
                await asyncio.sleep(0.02)

    assert [event.seq for event in page.items] == [1, 2, 3, 4, 5]
    assert [event.type for event in page.items] == [
        EventType.TASK_CREATED,
        EventType.TASK_CREATE_REJECTED,
        EventType.TASK_DELETE_REJECTED,
        EventType.TASK_CREATE_REJECTED,
        EventType.TASK_DELETED,
    ]
    assert [event.source for event in page.items] == ["svc-a"] * 3 + ["svc-go", "svc-a"]
    reasons = [event.reason.code if event.reason else None for event in page.items]
    assert reasons == [None, "conflict", "not_found", "malformed", None]
    assert page.items[4].task == task


def create_entry(name: str, **fields: str) -> dict[str, str]:
    return {"data": json.dumps({"name": name, "models": [BART]}), **fields}


async def test_refusals_of_entries_with_unusable_ids_are_all_audited(
    worker: FastStream, redis: Redis, new_unit_of_work: UnitOfWorkFactory
) -> None:
    entries = [
        create_entry("long-id", message_id="m" * 201, source="svc-a"),
        create_entry("", message_id="msg-invalid", source="svc-a"),
        create_entry("nul-id", message_id="msg\x00nul", source="svc-a"),
        create_entry("nul-source", message_id="msg-nul-source", source="svc\x00go"),
        create_entry("long-source", source="s" * 201),
        create_entry("forged", correlation_id="c-1\nERROR forged line"),
    ]
    # One transaction: the worker reads them all in one batch.
    async with redis.pipeline(transaction=True) as pipeline:
        for entry in entries:
            pipeline.xadd(CREATE_STREAM, entry)  # type: ignore[arg-type]
        entry_ids = [entry_id.decode() for entry_id in await pipeline.execute()]

    events = await logged_events(new_unit_of_work, at_least=len(entries))

    assert {event.type for event in events} == {EventType.TASK_CREATE_REJECTED}
    reasons = [event.reason.code if event.reason else None for event in events]
    assert reasons == ["malformed", "validation_error"] + ["malformed"] * 4
    # An unsafe id gives way to the entry id; a safe one still names the reply.
    assert [event.causation_id for event in events] == [
        entry_ids[0],
        "msg-invalid",
        *entry_ids[2:],
    ]
    assert [event.correlation_id for event in events] == [
        entry_ids[0],
        "msg-invalid",
        entry_ids[2],
        "msg-nul-source",
        *entry_ids[4:],
    ]
    assert [event.source for event in events] == ["svc-a"] * 3 + [None] * 3


async def logged_events(
    new_unit_of_work: UnitOfWorkFactory, at_least: int
) -> list[TaskEvent]:
    """The events in the log, once it holds `at_least` of them."""
    async with asyncio.timeout(5):
        while True:
            async with new_unit_of_work() as uow:
                page = await uow.audit.page(0, 100)
            if len(page.items) >= at_least:
                return list(page.items)
            await asyncio.sleep(0.02)


async def test_history_lists_one_tasks_events_including_refused_deletes(
    client: TaskClient,
) -> None:
    task = await client.create("summarization", [BART])
    await client.create("translation", ["hf://t5-small"])
    await client.delete(task.id)
    with pytest.raises(TaskNotFoundError):
        await client.delete(task.id)

    history = await client.history(task.id)

    assert [event.type for event in history.items] == [
        EventType.TASK_CREATED,
        EventType.TASK_DELETED,
        EventType.TASK_DELETE_REJECTED,
    ]
    assert {event.task_id for event in history.items} == {task.id}


async def test_events_query_pages_after_a_seq_and_filters_by_type(
    logged: list[str], redis_url: str
) -> None:
    async with TaskClient.from_url(redis_url) as client:
        first = await client.events(after_seq=0, limit=2)
        rest = await client.events(after_seq=first.last_seq, limit=100)
        refused = await client.events(event_type=EventType.TASK_CREATE_REJECTED)

    assert [event.seq for event in first.items + rest.items] == [1, 2, 3, 4, 5, 6]
    assert [event.seq for event in refused.items] == [5]


async def test_verify_and_reconcile_pass_on_a_log_of_many_mixed_commands(
    client: TaskClient, redis: Redis, new_unit_of_work: UnitOfWorkFactory
) -> None:
    created = await asyncio.gather(
        *(client.create(f"bulk-{n}", [BART, f"hf://org/model-{n}"]) for n in range(300))
    )
    conflicts = await asyncio.gather(
        *(client.create(f"bulk-{n}", [BART]) for n in range(0, 300, 7)),
        return_exceptions=True,
    )
    await asyncio.gather(*(client.delete(task.id) for task in created[::3]))
    await settled(new_unit_of_work)

    async with new_unit_of_work() as uow:
        chain = await verify_chain(uow)
        stream = await verify_stream(uow, redis, EVENTS_MAXLEN)
        replayed = await reconcile(uow)

    assert all(isinstance(error, TaskConflictError) for error in conflicts)
    assert chain.whole and chain.checked == 300 + len(conflicts) + 100
    assert stream.whole and stream.checked == chain.checked
    assert replayed.whole, replayed.findings


TAMPERING = {
    "edited": (
        "UPDATE audit_log SET payload = replace(payload, 'task-2', 'task-9') "
        "WHERE seq = 3",
        "seq 3: its content does not match its hash (edited)",
    ),
    "deleted": ("DELETE FROM audit_log WHERE seq = 4", "seq 4 is missing"),
    "reordered": (
        "UPDATE audit_log SET seq = 102 WHERE seq = 2; "
        "UPDATE audit_log SET seq = 2 WHERE seq = 3; "
        "UPDATE audit_log SET seq = 3 WHERE seq = 102",
        "seq 2: its event says seq 3 (moved?)",
    ),
    "cut at the end": (
        "DELETE FROM audit_log WHERE seq = 6",
        "the log ends at seq 5 but its head records seq 6",
    ),
}


@pytest.mark.parametrize("tampering", sorted(TAMPERING))
async def test_verify_names_the_first_broken_link_of_a_tampered_log(
    logged: list[str],
    database_url: str,
    new_unit_of_work: UnitOfWorkFactory,
    tampering: str,
) -> None:
    statements, finding = TAMPERING[tampering]
    for statement in statements.split("; "):
        await execute(database_url, statement)

    async with new_unit_of_work() as uow:
        chain = await verify_chain(uow)

    assert not chain.whole
    assert chain.findings[0].startswith(finding), chain.findings


async def test_verify_finds_a_stream_entry_removed_or_forged(
    logged: list[str], redis: Redis, new_unit_of_work: UnitOfWorkFactory
) -> None:
    entries = await redis.xrange(EVENTS_STREAM)
    await redis.xdel(EVENTS_STREAM, entries[2][0])
    forged = json.loads(entries[0][1][b"data"])
    forged["task"]["name"] = "forged"
    await redis.xadd(EVENTS_STREAM, {"data": json.dumps(forged)})

    async with new_unit_of_work() as uow:
        stream = await verify_stream(uow, redis, EVENTS_MAXLEN)

    assert "seq 3 is logged but not on stream task.events" in stream.findings
    assert any(finding.endswith("seq 1 differs") for finding in stream.findings)


async def test_reconcile_finds_changes_made_behind_the_log(
    logged: list[str], database_url: str, new_unit_of_work: UnitOfWorkFactory
) -> None:
    removed, live = logged[0], logged[2]
    await execute(database_url, "DELETE FROM tasks WHERE name = 'task-0'")
    await execute(
        database_url,
        "UPDATE tasks SET description = 'quietly changed' WHERE name = 'task-2'",
    )

    async with new_unit_of_work() as uow:
        verdict = await reconcile(uow)

    assert f"task {removed} was deleted without an event" in verdict.findings
    assert f"task {live} differs from its created event" in verdict.findings
    assert "the task tally says 3 tasks but the table holds 2" in verdict.findings


async def seed_log(new_unit_of_work: UnitOfWorkFactory, count: int) -> datetime:
    """Append `count` rejection events straight to the log; returns the first time."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for first in range(0, count, 2000):
        async with new_unit_of_work() as uow:
            for n in range(first, min(first + 2000, count)):
                uow.audit.record(
                    EventDraft(
                        event_id=uuid4(),
                        type=EventType.TASK_CREATE_REJECTED,
                        occurred_at=start + timedelta(seconds=n),
                        correlation_id=f"c-{n}",
                        causation_id=f"m-{n}",
                        source="seeder",
                    )
                )
            await uow.commit()
    return start


async def exported_peak_bytes(
    new_unit_of_work: UnitOfWorkFactory, path: Path
) -> tuple[int, int]:
    tracemalloc.start()
    with path.open("w") as out:
        async with new_unit_of_work() as uow:
            written = await export_events(uow, out)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return written, peak


async def test_export_writes_a_time_range_of_one_type_as_json_lines(
    new_unit_of_work: UnitOfWorkFactory, tmp_path: Path
) -> None:
    start = await seed_log(new_unit_of_work, 50)
    path = tmp_path / "range.jsonl"

    with path.open("w") as out:
        async with new_unit_of_work() as uow:
            written = await export_events(
                uow,
                out,
                since=start + timedelta(seconds=10),
                until=start + timedelta(seconds=20),
                event_type=EventType.TASK_CREATE_REJECTED,
            )

    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert written == len(events) == 10
    assert [event["seq"] for event in events] == list(range(11, 21))


@pytest.mark.timeout(120)
async def test_export_memory_stays_flat_as_the_log_grows(
    new_unit_of_work: UnitOfWorkFactory, tmp_path: Path
) -> None:
    await seed_log(new_unit_of_work, 2_000)
    # A first pass fills the caches (compiled SQL, imports) both runs then share.
    await exported_peak_bytes(new_unit_of_work, tmp_path / "warm-up.jsonl")
    small_written, small_peak = await exported_peak_bytes(
        new_unit_of_work, tmp_path / "small.jsonl"
    )
    await seed_log(new_unit_of_work, 18_000)

    large_written, large_peak = await exported_peak_bytes(
        new_unit_of_work, tmp_path / "large.jsonl"
    )

    assert (small_written, large_written) == (2_000, 20_000)
    # Ten times the events, far less than ten times the memory.
    assert large_peak < 2 * small_peak, (small_peak, large_peak)


async def test_the_tasks_audit_command_exits_non_zero_on_a_broken_record(
    logged: list[str], database_url: str, redis_url: str
) -> None:
    async def audit(*arguments: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker.audit.cli", "--redis-url", redis_url,
            "audit", "--database-url", database_url, *arguments,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, _ = await process.communicate()
        assert process.returncode is not None
        return process.returncode, stdout.decode()

    whole = await audit("verify")
    await execute(database_url, "DELETE FROM audit_log WHERE seq = 2")
    broken = await audit("verify")

    assert whole == (
        0,
        "chain: whole (6 events checked)\nstream: whole (6 entries checked)\n",
    )
    assert broken[0] == 1
    assert "seq 2 is missing" in broken[1]


async def test_a_starting_worker_forgets_what_outlived_its_retention(
    new_unit_of_work: UnitOfWorkFactory, worker_settings: WorkerSettings
) -> None:
    await seed_log(new_unit_of_work, 30)
    now = datetime.now(UTC)
    async with new_unit_of_work() as uow:
        uow.processed.remember(CREATE_STREAM, "old", "{}", now - timedelta(days=2))
        uow.processed.remember(CREATE_STREAM, "recent", "{}", now)
        for n in range(3):
            uow.audit.record(
                EventDraft(
                    event_id=uuid4(),
                    type=EventType.TASK_DELETE_REJECTED,
                    occurred_at=now,
                    correlation_id=f"recent-{n}",
                    causation_id=f"recent-{n}",
                )
            )
        await uow.commit()
    retention = {"processed_retention_s": 3600, "audit_retention_s": 3600}

    app = build_app(worker_settings.model_copy(update=retention))
    await app.start()
    try:
        await wait_until_forgotten(new_unit_of_work)
    finally:
        await app.stop()

    async with new_unit_of_work() as uow:
        remembered = await uow.processed.outcomes_of(CREATE_STREAM, {"old", "recent"})
        page = await uow.audit.page(0, 100)
        chain = await verify_chain(uow)
    assert set(remembered) == {"recent"}
    assert [event.seq for event in page.items] == [31, 32, 33]
    assert chain.whole, chain.findings
    assert chain.checked == 3


async def wait_until_forgotten(new_unit_of_work: UnitOfWorkFactory) -> None:
    async with asyncio.timeout(10):
        while True:
            async with new_unit_of_work() as uow:
                if (await uow.audit.chain_start()).first_seq > 1:
                    return
            await asyncio.sleep(0.05)


async def test_a_quiet_registry_forgets_its_whole_expired_log_and_still_verifies(
    new_unit_of_work: UnitOfWorkFactory,
    worker_settings: WorkerSettings,
    redis: Redis,
) -> None:
    await seed_log(new_unit_of_work, 30)

    app = build_app(worker_settings.model_copy(update={"audit_retention_s": 3600}))
    await app.start()
    try:
        await wait_until_forgotten(new_unit_of_work)
        await settled(new_unit_of_work)
    finally:
        await app.stop()

    async with new_unit_of_work() as uow:
        page = await uow.audit.page(0, 100)
        chain = await verify_chain(uow)
        stream = await verify_stream(uow, redis, EVENTS_MAXLEN)
    assert page.items == []
    assert chain.whole and chain.checked == 0, chain.findings
    assert stream.whole, stream.findings
    assert await redis.xlen(EVENTS_STREAM) == 30


async def test_verify_finds_events_lost_from_the_start_of_the_stream(
    logged: list[str], redis: Redis, new_unit_of_work: UnitOfWorkFactory
) -> None:
    entries = await redis.xrange(EVENTS_STREAM)
    await redis.xdel(EVENTS_STREAM, entries[0][0], entries[1][0])

    async with new_unit_of_work() as uow:
        lost = await verify_stream(uow, redis, EVENTS_MAXLEN)
        trimmed = await verify_stream(uow, redis, len(entries) - 2)

    assert lost.findings == [
        "seq 1 is logged but not on stream task.events",
        "seq 2 is logged but not on stream task.events",
    ]
    assert trimmed.whole, trimmed.findings


async def test_verify_finds_a_stream_deleted_whole(
    logged: list[str], redis: Redis, new_unit_of_work: UnitOfWorkFactory
) -> None:
    await redis.delete(EVENTS_STREAM)

    async with new_unit_of_work() as uow:
        stream = await verify_stream(uow, redis, 3)

    assert stream.findings == [
        f"seq {seq} is logged but not on stream task.events" for seq in (4, 5, 6)
    ]
