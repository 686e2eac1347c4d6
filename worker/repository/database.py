"""Engines and sessions. Nothing connects until the worker starts."""

import asyncio
from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# WAL lets queries read while a batch writes; synchronous=FULL keeps every commit on
# disk before the worker acknowledges the message; busy_timeout makes a second writer
# wait for the lock instead of failing at once.
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA foreign_keys=ON",
)


DEFAULT_LOCK_TIMEOUT_MS = 5_000


def _apply_sqlite_pragmas(dbapi_connection: DBAPIConnection, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def create_engine(
    database_url: str, lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS
) -> AsyncEngine:
    """An engine for the URL; SQLite connections get the pragmas above.

    On PostgreSQL a statement waits at most `lock_timeout_ms` for a lock, then
    fails as "database unavailable" and its batch is retried, with a warning that
    says why: otherwise a table locked by hand would stall the worker silently.

    No pre-ping: it would cost a round trip on every checkout. A connection that
    died with its server fails its batch as "database unavailable", SQLAlchemy
    discards the pool, and the consumer retries the batch on fresh connections.
    """
    connect_args: dict[str, Any] = {}
    if make_url(database_url).get_backend_name() == "postgresql":
        lock_timeout = {"lock_timeout": str(lock_timeout_ms)}
        connect_args["server_settings"] = lock_timeout
    engine = create_async_engine(database_url, connect_args=connect_args)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _apply_sqlite_pragmas)
    return engine


def write_lock_for(engine: AsyncEngine) -> asyncio.Lock | None:
    """A lock for the units of work of one process, where the database needs one."""
    return asyncio.Lock() if engine.dialect.name == "sqlite" else None


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Records stay readable after commit: replies and events are built from them.
    return async_sessionmaker(engine, expire_on_commit=False)


# SQLSTATE classes after which the same transaction may succeed later: connection
# exceptions, insufficient resources, the server shutting down or starting, a lock
# not granted in time, and serialization failures or deadlocks that a retry
# resolves.
_TRANSIENT_SQLSTATES = ("08", "53", "57P", "55P03", "40001", "40P01")


def database_unavailable(error: BaseException) -> bool:
    """Whether `error` means "try again later" rather than "this will never work".

    The database may be down, restarting, unreachable or (SQLite) locked by another
    writer for too long; asyncpg reports a server shutting down as a plain DBAPI
    error, recognised by its SQLSTATE.
    """
    if isinstance(error, OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    if isinstance(error, DBAPIError):
        sqlstate = str(getattr(error.orig, "sqlstate", "") or "")
        return error.connection_invalidated or sqlstate.startswith(_TRANSIENT_SQLSTATES)
    return False


def brief(error: BaseException) -> str:
    """A database error in one line, without the SQL and the values it carried.

    SQLAlchemy's message repeats the statement and its parameters, which make a
    warning many lines long and copy task data into the log.
    """
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    return f"{type(original).__name__}: {lines[0] if lines else ''}"
