"""Replies the worker publishes on a request's reply channel."""

from enum import StrEnum
from typing import Generic, Literal, TypeVar
from uuid import UUID

from pydantic import AwareDatetime

from contracts._base import Published


class Task(Published):
    """A task as the worker stores it."""

    id: UUID
    name: str
    description: str
    created_at: AwareDatetime
    models: list[str]


class TaskPage(Published):
    """One page of tasks; `total` counts every stored task."""

    total: int
    items: list[Task]


class ModelList(Published):
    """The model URIs registered for one task."""

    total: int
    items: list[str]


class DeletedTask(Published):
    """The id of the task a delete removed."""

    id: UUID


class ErrorCode(StrEnum):
    VALIDATION_ERROR = "validation_error"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    MALFORMED = "malformed"
    INTERNAL = "internal"


class FieldProblem(Published):
    """What is wrong with one field; `field` is a dotted path such as `models.2`."""

    field: str
    problem: str
    type: str


class ErrorBody(Published):
    code: ErrorCode
    message: str
    details: tuple[FieldProblem, ...] = ()


ResultT = TypeVar("ResultT", Task, TaskPage, ModelList, DeletedTask)


class OkReply(Published, Generic[ResultT]):
    correlation_id: str
    ok: Literal[True] = True
    result: ResultT


class ErrorReply(Published):
    correlation_id: str
    ok: Literal[False] = False
    error: ErrorBody
