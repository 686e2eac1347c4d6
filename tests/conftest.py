"""Fixtures over real servers: a flushed Redis database, SQLite and PostgreSQL."""

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from faststream import FastStream
from redis.asyncio import Redis
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.client import TaskClient
from tests.settings import POSTGRES_URL, REDIS_URL
from worker.migrate import upgrade_to_latest
from worker.repository.database import create_engine, create_session_factory
from worker.repository.unit_of_work import UnitOfWork, UnitOfWorkFactory
from worker.settings import WorkerSettings
from worker.transport.app import build_app

_TABLES = ("tasks", "processed_commands", "outbox", "audit_log")
_GENESIS = "0" * 64


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """A Redis database of its own, empty before and after the test."""
    client = Redis.from_url(REDIS_URL)
    await client.flushdb()
    yield REDIS_URL
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def _recreate_postgres_database(url: str) -> None:
    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        await connection.execute(
            f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'
        )
        await connection.execute(f'CREATE DATABASE "{target.database}"')
    finally:
        await connection.close()


async def _empty_tables(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        for table in _TABLES:
            await connection.exec_driver_sql(f"DELETE FROM {table}")
        await connection.exec_driver_sql(
            "UPDATE audit_head SET last_seq = 0, first_seq = 1, "
            f"last_hash = '{_GENESIS}', first_prev_hash = '{_GENESIS}'"
        )
        await connection.exec_driver_sql("UPDATE task_tally SET tasks = 0")
    await engine.dispose()


@pytest.fixture(scope="session")
def postgres_schema() -> str:
    """A PostgreSQL database made afresh for this run, migrated to the latest."""
    asyncio.run(_recreate_postgres_database(POSTGRES_URL))
    upgrade_to_latest(POSTGRES_URL, "postgres")
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a SQLite file, then the PostgreSQL test database."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}"
        upgrade_to_latest(url, "sqlite")
        yield url
        return

    url = request.getfixturevalue("postgres_schema")
    asyncio.run(_empty_tables(url))
    yield url


@pytest.fixture
async def session_factory(
    database_url: str,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
def new_unit_of_work(
    session_factory: async_sessionmaker[AsyncSession],
) -> UnitOfWorkFactory:
    def unit_of_work(*, read_only: bool = False) -> UnitOfWork:
        return UnitOfWork(session_factory, read_only=read_only)

    return unit_of_work


@pytest.fixture
def worker_settings(
    redis_url: str, database_url: str, tmp_path: Path
) -> WorkerSettings:
    return WorkerSettings(
        redis_url=redis_url,
        database_url=database_url,
        data_dir=tmp_path / "data",
        consumer=f"test-{uuid4().hex[:8]}",
        embedded_redis=False,
        batch_wait_ms=20,
    )


@pytest.fixture
async def worker(worker_settings: WorkerSettings) -> AsyncIterator[FastStream]:
    """The worker app running in this event loop against the test servers."""
    app = build_app(worker_settings)
    await app.start()
    yield app
    await app.stop()


@pytest.fixture
async def client(worker: FastStream, redis_url: str) -> AsyncIterator[TaskClient]:
    async with TaskClient.from_url(redis_url, timeout_s=5.0) as task_client:
        yield task_client


class WorkerProcess:
    """`tasks-worker run` as a child process, with its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout_s: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker.cli", "run"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + ready_timeout_s
        while "worker ready" not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker did not start:\n{self.log()}")
            time.sleep(0.05)

    def stop(self, timeout_s: float = 20.0) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(timeout_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def worker_process(
    tmp_path: Path,
) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory of worker processes; each is stopped (or killed) at teardown."""
    started: list[WorkerProcess] = []

    def start(**variables: Any) -> WorkerProcess:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("TASKS_")
        }
        env.update({key: str(value) for key, value in variables.items()})
        env.setdefault("TASKS_DATA_DIR", str(tmp_path / "data"))
        running = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log")
        started.append(running)
        running.start()
        return running

    yield start

    for running in started:
        if running.process is not None and running.process.poll() is None:
            running.process.kill()
            running.process.wait()
