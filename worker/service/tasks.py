"""The task registry's rules, over any `TaskStore`; no Redis or SQL here."""

from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID, uuid4

from contracts import (
    CreateTask,
    DeletedTask,
    EventType,
    ModelList,
    Task,
    TaskPage,
)
from worker.domain.changes import TaskChange
from worker.domain.errors import TaskNameNotFound, TaskNameTaken, TaskNotFound
from worker.repository.records import TaskRecord
from worker.repository.tasks import TaskStore


def utc_now() -> datetime:
    return datetime.now(UTC)


def task_view(record: TaskRecord) -> Task:
    return Task.model_validate(record, from_attributes=True)


class TaskService:
    """Applies commands to the store and records the changes they made in `changes`.

    The caller owns the transaction: it commits the store's session, and turns
    `changes` into events within the same transaction.
    """

    def __init__(
        self, tasks: TaskStore, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.tasks = tasks
        self.clock = clock
        self.changes: list[TaskChange] = []

    async def create_task(self, command: CreateTask) -> Task:
        """The new task; raises `TaskNameTaken` if its name is in use."""
        if await self.tasks.get_by_name(command.name) is not None:
            raise TaskNameTaken(command.name)

        record = TaskRecord(
            id=uuid4(),
            name=command.name,
            description=command.description,
            created_at=self.clock(),
            models=list(command.models),
        )
        self.tasks.add(record)

        task = task_view(record)
        self.changes.append(TaskChange(EventType.TASK_CREATED, task))
        return task

    async def delete_task(self, task_id: UUID) -> DeletedTask:
        """The id of the removed task; raises `TaskNotFound` for an unknown id."""
        record = await self._load(task_id)
        task = task_view(record)

        if not await self.tasks.delete(record):
            raise TaskNotFound(task_id)

        self.changes.append(TaskChange(EventType.TASK_DELETED, task))
        return DeletedTask(id=task_id)

    async def get_task(self, task_id: UUID) -> Task:
        """The task with this id; raises `TaskNotFound` for an unknown id."""
        return task_view(await self._load(task_id))

    async def list_tasks(self, skip: int, limit: int) -> TaskPage:
        """A page of tasks, oldest first, and how many tasks there are in all."""
        records = await self.tasks.page(skip, limit)
        total = await self.tasks.count()
        return TaskPage(total=total, items=[task_view(r) for r in records])

    async def task_models(self, name: str) -> ModelList:
        """The models of the task named `name`; raises `TaskNameNotFound`."""
        record = await self.tasks.get_by_name(name)
        if record is None:
            raise TaskNameNotFound(name)
        return ModelList(total=len(record.models), items=list(record.models))

    async def _load(self, task_id: UUID) -> TaskRecord:
        record = await self.tasks.get(task_id)
        if record is None:
            raise TaskNotFound(task_id)
        return record
