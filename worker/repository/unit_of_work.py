"""One transaction: every repository shares one session, committed once."""

from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from worker.repository.commands import Outbox, ProcessedCommands
from worker.repository.tasks import TaskRepository


class UnitOfWork:
    """Use as `async with uow:`; anything not committed is rolled back on exit."""

    tasks: TaskRepository
    processed: ProcessedCommands
    outbox: Outbox

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> "UnitOfWork":
        session = self._session_factory()
        self._session = session
        self.tasks = TaskRepository(session)
        self.processed = ProcessedCommands(session)
        self.outbox = Outbox(session)
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
        finally:
            await session.close()

    async def commit(self) -> None:
        await self._require_session().commit()

    async def rollback(self) -> None:
        await self._require_session().rollback()

    def _require_session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("use the unit of work inside `async with`")
        return self._session
