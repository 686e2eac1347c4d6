"""One transaction: every repository shares one session, committed once."""

import asyncio
from types import TracebackType
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from worker.repository.audit import AuditLog
from worker.repository.commands import Outbox, ProcessedCommands
from worker.repository.tasks import TaskRepository


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> "UnitOfWork": ...


class UnitOfWork:
    """Use as `async with uow:`; anything not committed is rolled back on exit.

    `write_lock`, given for SQLite, makes the units of work of one process take
    turns: SQLite has one writer at a time, and a transaction that read before
    another committed fails when it writes; waiting here is cheaper and fairer than
    SQLite's busy handler, which sleeps in steps of milliseconds. A `read_only` unit
    never writes, so it skips the lock (WAL readers see the last commit) and cannot
    commit.
    """

    tasks: TaskRepository
    processed: ProcessedCommands
    outbox: Outbox
    audit: AuditLog

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        write_lock: asyncio.Lock | None = None,
        *,
        read_only: bool = False,
    ) -> None:
        self._session_factory = session_factory
        self._write_lock = None if read_only else write_lock
        self.read_only = read_only
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> "UnitOfWork":
        if self._write_lock is not None:
            await self._write_lock.acquire()
        session = self._session_factory()
        self._session = session
        self.tasks = TaskRepository(session)
        self.processed = ProcessedCommands(session)
        self.outbox = Outbox(session)
        self.audit = AuditLog(session, self.outbox)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        session = self._require_session()
        self._session = None
        try:
            await session.rollback()
            await session.close()
        finally:
            if self._write_lock is not None:
                self._write_lock.release()

    async def commit(self) -> None:
        """Write the staged bookkeeping rows, then commit everything at once."""
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot commit")
        session = self._require_session()
        await self.tasks.flush()
        await self.processed.flush()
        # Last before the commit: the tally and the audit head stay locked until it.
        await self.tasks.write_tally()
        await self.audit.append()
        await self.outbox.flush()
        await session.commit()

    async def rollback(self) -> None:
        await self._require_session().rollback()

    def _require_session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("use the unit of work inside `async with`")
        return self._session
