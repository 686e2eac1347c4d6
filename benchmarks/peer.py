"""The peer: the straightforward FastStream port of the worker.

A `RedisBroker` subscriber per stream in a consumer group, one message per handler
call, one SQLAlchemy session and commit per message on a minimal tasks table, and
the reply as the handler's return value (so `broker.request()` works). It uses the
worker's SQLite pragmas, and logs per message at DEBUG as the worker does. Run as
`python -m benchmarks.peer --redis-url URL --database-url URL`; it prints
`peer ready` once subscribed and stops on SIGTERM.
"""

import argparse
import asyncio
import logging
import signal
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from faststream.redis import RedisBroker, StreamSub
from sqlalchemy import JSON, DateTime, String, event, select
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contracts import CREATE_STREAM, QUERY_STREAM, CreateTask, GetTask

GROUP = "bench-peer"
CONSUMER = "peer-1"
READY_LINE = "peer ready"

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA busy_timeout=5000",
)


class PeerRecord(DeclarativeBase):
    pass


class PeerTask(PeerRecord):
    __tablename__ = "peer_tasks"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    models: Mapped[list[str]] = mapped_column(JSON)


def _apply_pragmas(dbapi_connection: DBAPIConnection, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def create_peer_engine(database_url: str) -> AsyncEngine:
    engine = create_async_engine(database_url)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _apply_pragmas)
    return engine


def task_json(record: PeerTask) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "name": record.name,
        "description": record.description,
        "created_at": record.created_at.isoformat(),
        "models": list(record.models),
    }


def _error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


def build_peer(redis_url: str, engine: AsyncEngine) -> RedisBroker:
    """The broker with its two subscribers; it connects when started."""
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    broker = RedisBroker(redis_url, log_level=logging.DEBUG)

    def in_group(stream: str) -> StreamSub[Literal[False]]:
        return StreamSub(stream, group=GROUP, consumer=CONSUMER)

    @broker.subscriber(stream=in_group(CREATE_STREAM))
    async def create_task(command: CreateTask) -> dict[str, Any]:
        async with sessions.begin() as session:
            taken = select(PeerTask.id).where(PeerTask.name == command.name)
            if await session.scalar(taken) is not None:
                return _error("conflict", f"a task named {command.name!r} exists")
            record = PeerTask(
                id=uuid4(),
                name=command.name,
                description=command.description,
                created_at=datetime.now(UTC),
                models=list(command.models),
            )
            session.add(record)
        return {"ok": True, "result": task_json(record)}

    @broker.subscriber(stream=in_group(QUERY_STREAM))
    async def get_task(query: GetTask) -> dict[str, Any]:
        async with sessions.begin() as session:
            record = await session.get(PeerTask, query.id)
            if record is None:
                return _error("not_found", f"no task has id {query.id}")
            return {"ok": True, "result": task_json(record)}

    return broker


async def serve(redis_url: str, database_url: str) -> None:
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    engine = create_peer_engine(database_url)
    broker = build_peer(redis_url, engine)
    await broker.start()
    print(READY_LINE, flush=True)
    try:
        await stopping.wait()
    finally:
        await broker.stop()
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peer")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--database-url", required=True)
    arguments = parser.parse_args()
    asyncio.run(serve(arguments.redis_url, arguments.database_url))


if __name__ == "__main__":
    main()
