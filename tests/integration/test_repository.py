"""The task repository and unit of work on SQLite and PostgreSQL."""

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from alembic import command
from sqlalchemy.exc import IntegrityError, StatementError

from worker.migrate import alembic_config, upgrade_to_latest
from worker.repository.records import TaskRecord
from worker.repository.unit_of_work import UnitOfWork

NewUnitOfWork = Callable[[], UnitOfWork]

PI_DAY = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
KOLKATA = timezone(timedelta(hours=5, minutes=30))


def task_record(
    name: str,
    created_at: datetime = PI_DAY,
    task_id: UUID | None = None,
) -> TaskRecord:
    return TaskRecord(
        id=task_id or uuid4(),
        name=name,
        description=f"{name} for the newsroom",
        created_at=created_at,
        models=[f"hf://newsroom/{name}"],
    )


async def store(new_unit_of_work: NewUnitOfWork, *records: TaskRecord) -> None:
    async with new_unit_of_work() as uow:
        for record in records:
            uow.tasks.add(record)
        await uow.commit()


async def stored_names(new_unit_of_work: NewUnitOfWork) -> list[str]:
    async with new_unit_of_work() as uow:
        return [record.name for record in await uow.tasks.page(0, 1000)]


async def paged_ids(
    new_unit_of_work: NewUnitOfWork, *, skip: int, limit: int
) -> list[UUID]:
    # Read inside the unit of work: leaving it rolls back and expires what it loaded.
    async with new_unit_of_work() as uow:
        return [record.id for record in await uow.tasks.page(skip, limit)]


class TestTimestamps:
    async def test_created_at_comes_back_aware_and_in_utc(
        self, new_unit_of_work: NewUnitOfWork
    ) -> None:
        in_kolkata = PI_DAY.astimezone(KOLKATA)
        record = task_record("summarization", created_at=in_kolkata)
        await store(new_unit_of_work, record)

        async with new_unit_of_work() as uow:
            loaded = await uow.tasks.get(record.id)
            created_at = None if loaded is None else loaded.created_at

        assert created_at is not None
        assert created_at.utcoffset() == timedelta(0)
        assert created_at == PI_DAY
        assert created_at.microsecond == PI_DAY.microsecond

    async def test_a_naive_timestamp_is_refused(
        self, new_unit_of_work: NewUnitOfWork
    ) -> None:
        naive = PI_DAY.replace(tzinfo=None)

        with pytest.raises(StatementError, match="timezone-aware"):
            await store(new_unit_of_work, task_record("summarization", naive))

        assert await stored_names(new_unit_of_work) == []


class TestPaging:
    async def test_a_page_is_ordered_by_creation_time(
        self, new_unit_of_work: NewUnitOfWork
    ) -> None:
        await store(
            new_unit_of_work,
            task_record("third", PI_DAY + timedelta(hours=2)),
            task_record("first", PI_DAY - timedelta(days=400)),
            task_record("second", PI_DAY + timedelta(microseconds=1)),
            task_record("zeroth", PI_DAY - timedelta(days=401)),
        )

        names = await stored_names(new_unit_of_work)

        assert names == ["zeroth", "first", "second", "third"]

    async def test_times_in_other_zones_are_ordered_by_their_instant(
        self, new_unit_of_work: NewUnitOfWork
    ) -> None:
        # 20:00 in Kolkata is 14:30 UTC: earlier than 15:00 UTC, later as text.
        kolkata_evening = datetime(2026, 3, 14, 20, 0, tzinfo=KOLKATA)
        utc_afternoon = datetime(2026, 3, 14, 15, 0, tzinfo=UTC)
        await store(
            new_unit_of_work,
            task_record("utc-afternoon", utc_afternoon),
            task_record("kolkata-evening", kolkata_evening),
        )

        names = await stored_names(new_unit_of_work)

        assert names == ["kolkata-evening", "utc-afternoon"]

    async def test_tasks_created_at_the_same_instant_are_ordered_by_id(
        self, new_unit_of_work: NewUnitOfWork
    ) -> None:
        # Neither the names nor the order of insertion agree with the order of ids.
        twins = {
            "ziti": UUID("00000000-0000-4000-8000-000000000009"),
            "bucatini": UUID("f0000000-0000-4000-8000-000000000000"),
            "rigatoni": UUID("00000000-0000-4000-8000-00000000000a"),
            "penne": UUID("0a000000-0000-4000-8000-000000000000"),
        }
        earlier = task_record("acini", PI_DAY - timedelta(seconds=1), UUID(int=2**127))
        await store(
            new_unit_of_work,
            *(task_record(name, PI_DAY, task_id) for name, task_id in twins.items()),
            earlier,
        )

        page_ids = await paged_ids(new_unit_of_work, skip=0, limit=10)

        assert page_ids == [earlier.id, *sorted(twins.values())]

    async def test_consecutive_pages_cover_every_task_once(
        self, new_unit_of_work: NewUnitOfWork
    ) -> None:
        records = [
            task_record(f"task-{index:02d}", PI_DAY + timedelta(seconds=index // 3))
            for index in range(11)
        ]
        await store(new_unit_of_work, *records)

        pages = [
            await paged_ids(new_unit_of_work, skip=skip, limit=4)
            for skip in (0, 4, 8, 12)
        ]

        expected = sorted(records, key=lambda record: (record.created_at, record.id))
        assert [len(page) for page in pages] == [4, 4, 3, 0]
        assert [task_id for page in pages for task_id in page] == [
            record.id for record in expected
        ]


class TestLookups:
    async def test_count_counts_every_task(
        self, new_unit_of_work: NewUnitOfWork
    ) -> None:
        names = ["ocr", "asr", "ner", "tts", "qa"]
        await store(new_unit_of_work, *(task_record(name) for name in names))

        async with new_unit_of_work() as uow:
            count = await uow.tasks.count()

        assert count == 5

    async def test_an_empty_registry_counts_zero(
        self, new_unit_of_work: NewUnitOfWork
    ) -> None:
        async with new_unit_of_work() as uow:
            assert await uow.tasks.count() == 0

    async def test_a_task_is_found_by_its_exact_name(
        self, new_unit_of_work: NewUnitOfWork
    ) -> None:
        wanted = task_record("translation")
        await store(new_unit_of_work, task_record("transcription"), wanted)

        async with new_unit_of_work() as uow:
            found = await uow.tasks.get_by_name("translation")
            missing = await uow.tasks.get_by_name("translat")
            assert found is not None
            assert found.id == wanted.id
            assert found.models == ["hf://newsroom/translation"]

        assert missing is None

    async def test_a_deleted_task_is_gone_after_commit(
        self, new_unit_of_work: NewUnitOfWork
    ) -> None:
        doomed = task_record("sentiment")
        await store(new_unit_of_work, doomed, task_record("translation"))

        async with new_unit_of_work() as uow:
            record = await uow.tasks.get(doomed.id)
            assert record is not None
            await uow.tasks.delete(record)
            await uow.commit()

        assert await stored_names(new_unit_of_work) == ["translation"]

    async def test_a_task_deleted_in_this_unit_of_work_is_no_longer_found(
        self, new_unit_of_work: NewUnitOfWork
    ) -> None:
        doomed = task_record("sentiment")
        await store(new_unit_of_work, doomed)

        async with new_unit_of_work() as uow:
            record = await uow.tasks.get(doomed.id)
            assert record is not None
            await uow.tasks.delete(record)
            by_id = await uow.tasks.get(doomed.id)
            by_name = await uow.tasks.get_by_name("sentiment")

        assert (by_id, by_name) == (None, None)


class TestUnitOfWork:
    async def test_leaving_without_commit_keeps_nothing(
        self, new_unit_of_work: NewUnitOfWork
    ) -> None:
        async with new_unit_of_work() as uow:
            uow.tasks.add(task_record("summarization"))
            uow.processed.remember("task.create", "msg-1", '{"ok":true}', PI_DAY)
            uow.outbox.stage(uuid4(), "task.events", "{}", PI_DAY)
            await uow.tasks.session.flush()

        async with new_unit_of_work() as uow:
            counts = [
                await uow.tasks.count(),
                await uow.processed.count(),
                await uow.outbox.count(),
            ]

        assert counts == [0, 0, 0]

    async def test_an_exception_inside_rolls_back(
        self, new_unit_of_work: NewUnitOfWork
    ) -> None:
        with pytest.raises(LookupError):
            async with new_unit_of_work() as uow:
                uow.tasks.add(task_record("summarization"))
                raise LookupError("the batch failed halfway")

        assert await stored_names(new_unit_of_work) == []

    async def test_a_second_task_with_a_taken_name_is_refused_by_the_database(
        self, new_unit_of_work: NewUnitOfWork
    ) -> None:
        await store(new_unit_of_work, task_record("summarization"))

        with pytest.raises(IntegrityError):
            await store(new_unit_of_work, task_record("summarization"))

        assert await stored_names(new_unit_of_work) == ["summarization"]


class TestTally:
    async def test_the_count_follows_creates_and_deletes_as_they_commit(
        self, new_unit_of_work: NewUnitOfWork
    ) -> None:
        doomed = task_record("sentiment")
        await store(new_unit_of_work, doomed, task_record("ocr"), task_record("asr"))

        async with new_unit_of_work() as uow:
            record = await uow.tasks.get(doomed.id)
            assert record is not None
            await uow.tasks.delete(record)
            uow.tasks.add(task_record("ner"))
            uow.tasks.add(task_record("tts"))
            in_the_unit = await uow.tasks.count()
            await uow.commit()

        async with new_unit_of_work() as uow:
            after = await uow.tasks.count()
            names = {record.name for record in await uow.tasks.page(0, 10)}
        assert (in_the_unit, after) == (4, 4)
        assert names == {"ocr", "asr", "ner", "tts"}

    async def test_changes_rolled_back_leave_the_count(
        self, new_unit_of_work: NewUnitOfWork
    ) -> None:
        await store(new_unit_of_work, task_record("ocr"))

        async with new_unit_of_work() as uow:
            uow.tasks.add(task_record("asr"))
            await uow.tasks.flush()

        async with new_unit_of_work() as uow:
            assert await uow.tasks.count() == 1


def test_the_tally_migration_counts_the_tasks_already_stored(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}"
    command.upgrade(alembic_config(url), "0002")
    with sqlite3.connect(tmp_path / "tasks.db") as connection:
        connection.executemany(
            "INSERT INTO tasks (id, name, description, created_at, models) "
            "VALUES (?, ?, '', '2026-03-14 15:09:26', '[]')",
            [(uuid4().hex, f"task-{n}") for n in range(7)],
        )

    upgrade_to_latest(url, "sqlite")

    with sqlite3.connect(tmp_path / "tasks.db") as connection:
        (tallied,) = connection.execute("SELECT tasks FROM task_tally").fetchone()
    assert tallied == 7
