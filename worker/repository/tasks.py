from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

from sqlalchemy import select

from worker.repository.base import Repository
from worker.repository.records import TaskRecord


class TaskStore(Protocol):
    """What the service needs from task persistence; fakes implement it in tests."""

    def add(self, record: TaskRecord) -> TaskRecord: ...

    async def get(self, task_id: UUID) -> TaskRecord | None: ...

    async def get_by_name(self, name: str) -> TaskRecord | None: ...

    async def delete(self, record: TaskRecord) -> None: ...

    async def page(self, skip: int, limit: int) -> Sequence[TaskRecord]: ...

    async def count(self) -> int: ...


class TaskRepository(Repository[TaskRecord]):
    record_type = TaskRecord

    async def get_by_name(self, name: str) -> TaskRecord | None:
        """The task with this name (a unique index lookup), or None."""
        query = select(TaskRecord).where(TaskRecord.name == name)
        return await self.session.scalar(query)

    async def page(self, skip: int, limit: int) -> Sequence[TaskRecord]:
        """Tasks oldest first, ties broken by id, so that pages never overlap."""
        order = (TaskRecord.created_at, TaskRecord.id)
        return await self.list(skip, limit, order_by=order)
