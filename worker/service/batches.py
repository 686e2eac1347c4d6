"""Applying a batch of validated commands in one transaction, each at most once."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from contracts import (
    CREATE_STREAM,
    AuditEvents,
    CreateTask,
    DeleteTask,
    ErrorBody,
    EventPage,
    EventType,
    GetTask,
    ListTasks,
    TaskHistory,
    TaskModels,
)
from worker.domain.errors import TaskError
from worker.repository.audit import EventDraft
from worker.repository.unit_of_work import UnitOfWork, UnitOfWorkFactory
from worker.service.outcomes import Outcome, refused
from worker.service.tasks import TaskService

logger = logging.getLogger(__name__)

CommandBody = (
    CreateTask
    | DeleteTask
    | GetTask
    | ListTasks
    | TaskModels
    | TaskHistory
    | AuditEvents
)


@dataclass(frozen=True, slots=True)
class Command:
    """A validated message and what is needed to apply it once and answer it."""

    stream: str
    message_id: str
    correlation_id: str
    body: CommandBody
    entry_id: str = ""
    source: str | None = None

    @property
    def changes_state(self) -> bool:
        return isinstance(self.body, CreateTask | DeleteTask)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A create or delete refused before it could be applied: audited, once."""

    stream: str
    message_id: str
    correlation_id: str
    error: ErrorBody
    source: str | None = None


async def apply_batch(
    new_unit_of_work: UnitOfWorkFactory,
    commands: Sequence[Command],
    rejected: Sequence[Rejected] = (),
) -> list[Outcome]:
    """The outcome of every command, in order, all committed in one transaction.

    `rejected` entries of the same batch are audited in that transaction too. When
    the commit fails on a unique key (another worker created the same name
    meanwhile), the commands are applied again one transaction each, so that only
    the command that lost the race is refused.
    """
    if not commands and not rejected:
        return []
    if not rejected and not any(command.changes_state for command in commands):
        return await _answer_queries(new_unit_of_work, commands)

    try:
        async with new_unit_of_work() as uow:
            outcomes = await _apply_all(uow, commands)
            await _audit_rejections(uow, rejected)
            await uow.commit()
            return outcomes

    except IntegrityError:
        if len(commands) == 1:
            return [await _apply_alone(new_unit_of_work, commands[0])]
        logger.warning(
            "batch_conflict commands=%d: a concurrent writer took a name, "
            "applying the batch one command at a time",
            len(commands),
        )

    outcomes = [await _apply_alone(new_unit_of_work, command) for command in commands]
    async with new_unit_of_work() as uow:
        await _audit_rejections(uow, rejected)
        await uow.commit()
    return outcomes


async def _answer_queries(
    new_unit_of_work: UnitOfWorkFactory, commands: Sequence[Command]
) -> list[Outcome]:
    # Nothing to write: no write lock to wait for, no commit to pay for.
    async with new_unit_of_work(read_only=True) as uow:
        return await _apply_all(uow, commands)


async def _apply_alone(
    new_unit_of_work: UnitOfWorkFactory, command: Command
) -> Outcome:
    # A second run sees the row the concurrent writer committed and answers
    # `conflict`; a second IntegrityError is a real fault and propagates.
    for attempt in (1, 2):
        try:
            async with new_unit_of_work() as uow:
                (outcome,) = await _apply_all(uow, [command])
                await uow.commit()
                return outcome
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _apply_all(uow: UnitOfWork, commands: Sequence[Command]) -> list[Outcome]:
    if not commands:
        return []
    remembered = await _preload(uow, commands)
    return [await _apply_once(uow, command, remembered) for command in commands]


async def _preload(uow: UnitOfWork, commands: Sequence[Command]) -> dict[str, str]:
    """Fetch what the batch will look up in a few queries; returns known outcomes.

    Every command of a batch comes from one stream.
    """
    changing = {command.message_id for command in commands if command.changes_state}
    remembered = await uow.processed.outcomes_of(commands[0].stream, changing)

    bodies = [command.body for command in commands]
    await uow.tasks.preload(
        task_ids=[body.id for body in bodies if isinstance(body, DeleteTask | GetTask)],
        names=[
            body.name for body in bodies if isinstance(body, CreateTask | TaskModels)
        ],
    )
    return remembered


async def _apply_once(
    uow: UnitOfWork, command: Command, remembered: dict[str, str]
) -> Outcome:
    if command.changes_state and command.message_id in remembered:
        logger.debug("duplicate message_id=%r answered again", command.message_id)
        return Outcome.remembered(remembered[command.message_id])

    service = TaskService(uow.tasks)
    try:
        outcome = Outcome.success(await _dispatch(uow, service, command.body))
    except TaskError as error:
        outcome = Outcome.failure(refused(error))

    if command.changes_state:
        _record(uow, command, service, outcome)
        remembered[command.message_id] = outcome.body
    return outcome


async def _dispatch(
    uow: UnitOfWork, service: TaskService, body: CommandBody
) -> BaseModel:
    match body:
        case CreateTask():
            return await service.create_task(body)
        case DeleteTask(id=task_id):
            return await service.delete_task(task_id)
        case GetTask(id=task_id):
            return await service.get_task(task_id)
        case ListTasks(skip=skip, limit=limit):
            return await service.list_tasks(skip, limit)
        case TaskModels(name=name):
            return await service.task_models(name)
        case TaskHistory(id=task_id):
            events = await uow.audit.history(task_id)
            return EventPage(items=events, last_seq=events[-1].seq if events else 0)
        case AuditEvents(after_seq=after_seq, limit=limit, type=event_type):
            return await uow.audit.page(after_seq, limit, event_type)


def _record(
    uow: UnitOfWork, command: Command, service: TaskService, outcome: Outcome
) -> None:
    now = datetime.now(UTC)
    uow.processed.remember(command.stream, command.message_id, outcome.body, now)

    for change in service.changes:
        uow.audit.record(
            EventDraft(
                event_id=uuid4(),
                type=change.type,
                occurred_at=now,
                correlation_id=command.correlation_id,
                causation_id=command.message_id,
                source=command.source,
                task_id=change.task.id,
                task=change.task,
            )
        )
    if outcome.error is not None:
        task_id = command.body.id if isinstance(command.body, DeleteTask) else None
        uow.audit.record(_rejection(command.stream, command, outcome.error, task_id))


async def _audit_rejections(uow: UnitOfWork, rejected: Sequence[Rejected]) -> None:
    if not rejected:
        return
    message_ids = {entry.message_id for entry in rejected}
    already = await uow.processed.outcomes_of(rejected[0].stream, message_ids)

    now = datetime.now(UTC)
    for entry in rejected:
        if entry.message_id in already:
            continue
        already[entry.message_id] = ""
        outcome = Outcome.failure(entry.error)
        uow.processed.remember(entry.stream, entry.message_id, outcome.body, now)
        uow.audit.record(_rejection(entry.stream, entry, entry.error, None))


def _rejection(
    stream: str,
    command: Command | Rejected,
    error: ErrorBody,
    task_id: UUID | None,
) -> EventDraft:
    rejected_type = (
        EventType.TASK_CREATE_REJECTED
        if stream == CREATE_STREAM
        else EventType.TASK_DELETE_REJECTED
    )
    return EventDraft(
        event_id=uuid4(),
        type=rejected_type,
        occurred_at=datetime.now(UTC),
        correlation_id=command.correlation_id,
        causation_id=command.message_id,
        source=command.source,
        task_id=task_id,
        reason=error,
    )
