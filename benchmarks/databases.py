"""Fresh databases for each run, seeded by bulk inserts rather than through the bus."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.peer import PeerRecord, PeerTask, create_peer_engine
from worker.migrate import upgrade_to_latest
from worker.repository.database import create_engine
from worker.repository.records import Record, TaskRecord, TaskTally

WORKER_TASKS = Record.metadata.tables[TaskRecord.__tablename__]
PEER_TASKS = PeerRecord.metadata.tables[PeerTask.__tablename__]

SEED_CHUNK = 5_000
SEED_MODELS = ["hf://bench/model-a", "hf://bench/model-b"]
# Seeded tasks are older than any created during the run, so a list page of the
# oldest tasks reads seeded rows only.
SEED_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def fresh_sqlite_url(folder: Path, name: str) -> str:
    path = folder / f"{name}.db"
    for leftover in folder.glob(f"{name}.db*"):
        leftover.unlink()
    return f"sqlite+aiosqlite:///{path}"


async def recreate_postgres(url: str) -> None:
    """Drop and create the benchmark's own database (never any other)."""
    database = make_url(url).database
    await _as_admin(
        url,
        f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
        f'CREATE DATABASE "{database}"',
    )


async def drop_postgres(url: str) -> None:
    database = make_url(url).database
    await _as_admin(url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def _as_admin(url: str, *statements: str) -> None:
    """Run statements in the server's `postgres` database, as the URL's role."""
    admin = make_url(url).set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def migrate(url: str, name_for_logs: str) -> None:
    # Alembic's env runs its own event loop, so it needs a thread of its own.
    await asyncio.to_thread(upgrade_to_latest, url, name_for_logs)


async def seed_worker_tasks(url: str, count: int, first: int = 0) -> list[UUID]:
    """Insert `count` tasks into the worker's table; returns their ids.

    The worker reads its task count from the tally, which moves by as many.
    """
    engine = create_engine(url)
    try:
        ids = await _seed(engine, WORKER_TASKS, count, first)
        async with engine.begin() as connection:
            await connection.execute(
                update(TaskTally).values(tasks=TaskTally.tasks + count)
            )
        return ids
    finally:
        await engine.dispose()


async def create_peer_table(url: str, count: int) -> list[UUID]:
    """The peer's table, made afresh with `count` tasks in it; returns their ids."""
    engine = create_peer_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(PeerRecord.metadata.create_all)
        return await _seed(engine, PEER_TASKS, count, first=0)
    finally:
        await engine.dispose()


async def count_rows(url: str, table: Table) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            query = select(func.count()).select_from(table)
            return int((await connection.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def _seed(
    engine: AsyncEngine, table: Table, count: int, first: int
) -> list[UUID]:
    ids = [uuid4() for _ in range(count)]
    for start in range(0, count, SEED_CHUNK):
        rows = [
            _seed_row(task_id, first + start + offset)
            for offset, task_id in enumerate(ids[start : start + SEED_CHUNK])
        ]
        async with engine.begin() as connection:
            await connection.execute(insert(table), rows)
    return ids


def _seed_row(task_id: UUID, number: int) -> dict[str, object]:
    return {
        "id": task_id,
        "name": f"seeded-{number:07d}",
        "description": "",
        "created_at": SEED_EPOCH + timedelta(milliseconds=number),
        "models": SEED_MODELS,
    }
