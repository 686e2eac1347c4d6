from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from worker.repository.base import Repository
from worker.repository.records import TaskRecord, TaskTally

TALLY_ID = 1


class TaskStore(Protocol):
    """What the service needs from task persistence; fakes implement it in tests."""

    def add(self, record: TaskRecord) -> TaskRecord: ...

    async def get(self, task_id: UUID) -> TaskRecord | None: ...

    async def get_by_name(self, name: str) -> TaskRecord | None: ...

    async def delete(self, record: TaskRecord) -> bool: ...

    async def page(self, skip: int, limit: int) -> Sequence[TaskRecord]: ...

    async def count(self) -> int: ...


class TaskRepository(Repository[TaskRecord]):
    """Tasks in one session. `preload` fetches a batch's tasks in one query each.

    After a preload, lookups of the preloaded ids and names are answered from the
    session (including the tasks added or deleted since), so a batch of a hundred
    commands costs a handful of statements instead of hundreds. The count comes from
    the task tally, which `write_tally` moves by what this session added and deleted.
    """

    record_type = TaskRecord

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self._by_name: dict[str, TaskRecord | None] = {}
        self._staged: list[TaskRecord] = []
        self._deleted: set[UUID] = set()
        self._tally_change = 0

    async def preload(
        self, task_ids: Iterable[UUID] = (), names: Iterable[str] = ()
    ) -> None:
        """Load these tasks into the session; unknown names are remembered as free."""
        task_ids, names = set(task_ids), set(names)
        if task_ids:
            query = select(TaskRecord).where(TaskRecord.id.in_(task_ids))
            for record in await self.session.scalars(query):
                self._by_name[record.name] = record
        if names - self._by_name.keys():
            query = select(TaskRecord).where(TaskRecord.name.in_(names))
            found = {
                record.name: record for record in await self.session.scalars(query)
            }
            for name in names:
                self._by_name.setdefault(name, found.get(name))

    def add(self, record: TaskRecord) -> TaskRecord:
        """Stage a new task; `flush` writes all staged tasks in one INSERT."""
        self._by_name[record.name] = record
        self._staged.append(record)
        self._tally_change += 1
        return record

    async def flush(self) -> None:
        """Write staged tasks; lookups call it first, so reads see the batch's adds."""
        staged, self._staged = self._staged, []
        if staged:
            rows = [_row(record) for record in staged]
            await self.session.execute(insert(TaskRecord), rows)

    async def get(self, key: Any) -> TaskRecord | None:
        # The session would still hand out a record deleted but not yet flushed.
        if key in self._deleted:
            return None
        await self.flush()
        return await super().get(key)

    async def count(self) -> int:
        """How many tasks there are, this session's changes included."""
        query = select(TaskTally.tasks).where(TaskTally.id == TALLY_ID)
        stored = await self.session.scalar(query)
        return int(stored or 0) + self._tally_change

    async def write_tally(self) -> None:
        """Move the tally by this session's creates and deletes.

        Called last before the commit: on PostgreSQL the tally row stays locked
        until then, and concurrent writers queue for it.
        """
        change, self._tally_change = self._tally_change, 0
        if change:
            query = (
                update(TaskTally)
                .where(TaskTally.id == TALLY_ID)
                .values(tasks=TaskTally.tasks + change)
            )
            await self.session.execute(query)

    async def delete(self, record: TaskRecord) -> bool:
        """Delete now; False when a concurrent transaction deleted the task first.

        The DELETE runs at once rather than at flush so that its row count is known:
        two workers may both load a task and then race to delete it.
        """
        self._by_name[record.name] = None
        self._deleted.add(record.id)
        query = delete(TaskRecord).where(TaskRecord.id == record.id)
        result = await self.session.execute(query)
        deleted = bool(getattr(result, "rowcount", 0))
        if deleted:
            self._tally_change -= 1
        return deleted

    async def get_by_name(self, name: str) -> TaskRecord | None:
        """The task with this name (a unique index lookup), or None."""
        if name in self._by_name:
            return self._by_name[name]
        await self.flush()
        query = select(TaskRecord).where(TaskRecord.name == name)
        record = await self.session.scalar(query)
        self._by_name[name] = record
        return record

    async def every(self) -> AsyncIterator[TaskRecord]:
        """Every task, read in chunks so that memory stays flat."""
        await self.flush()
        query = select(TaskRecord).execution_options(yield_per=1000)
        async for record in await self.session.stream_scalars(query):
            yield record

    async def page(self, skip: int, limit: int) -> Sequence[TaskRecord]:
        """Tasks oldest first, ties broken by id, so that pages never overlap."""
        await self.flush()
        order = (TaskRecord.created_at, TaskRecord.id)
        return await self.list(skip, limit, order_by=order)


def _row(record: TaskRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "description": record.description,
        "created_at": record.created_at,
        "models": record.models,
    }
