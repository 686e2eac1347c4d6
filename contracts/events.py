"""Entries the worker appends to stream `task.events`, one per change."""

from enum import StrEnum
from uuid import UUID

from pydantic import AwareDatetime

from contracts._base import Published
from contracts.replies import Task


class EventType(StrEnum):
    TASK_CREATED = "task.created"
    TASK_DELETED = "task.deleted"


class TaskEvent(Published):
    """A change to the registry.

    `task` is the task after a create and as it was before a delete. `causation_id` is
    the message id of the command that caused the change.
    """

    event_id: UUID
    type: EventType
    occurred_at: AwareDatetime
    correlation_id: str
    causation_id: str
    task: Task
