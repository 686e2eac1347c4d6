"""Bodies of the messages that services publish to the worker."""

from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, StringConstraints

from contracts._base import Contract

MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 2000
MAX_MODELS = 256
MAX_MODEL_URI_CHARS = 512
MAX_LIST_LIMIT = 1000

# `scheme://rest`, the scheme as RFC 3986 defines it, the rest without spaces.
MODEL_URI_PATTERN = r"^[A-Za-z][A-Za-z0-9+.\-]*://\S+$"


def _not_nil(task_id: UUID) -> UUID:
    if task_id.int == 0:
        raise ValueError("the nil UUID names no task")
    return task_id


def _no_duplicates(uris: list[str]) -> list[str]:
    seen: set[str] = set()
    for uri in uris:
        if uri in seen:
            raise ValueError(f"model {uri!r} is listed more than once")
        seen.add(uri)
    return uris


TaskId = Annotated[UUID, AfterValidator(_not_nil)]

TaskName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=MAX_NAME_CHARS,
    ),
]

ModelUri = Annotated[
    str,
    StringConstraints(max_length=MAX_MODEL_URI_CHARS, pattern=MODEL_URI_PATTERN),
]


class CreateTask(Contract):
    """Register a task and the models to evaluate for it (stream `task.create`)."""

    name: TaskName
    description: Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_CHARS)] = (
        ""
    )
    models: Annotated[
        list[ModelUri],
        Field(max_length=MAX_MODELS),
        AfterValidator(_no_duplicates),
    ]


class DeleteTask(Contract):
    """Remove a task by id (stream `task.delete`)."""

    id: TaskId


class GetTask(Contract):
    """Ask for one task by id."""

    kind: Literal["get"]
    id: TaskId


class ListTasks(Contract):
    """Ask for a page of tasks, oldest first (ties broken by id)."""

    kind: Literal["list"]
    skip: Annotated[int, Field(ge=0)] = 0
    limit: Annotated[int, Field(ge=1, le=MAX_LIST_LIMIT)] = 100


class TaskModels(Contract):
    """Ask for the model list of the task with this name."""

    kind: Literal["models"]
    name: TaskName


TaskQuery = Annotated[
    GetTask | ListTasks | TaskModels,
    Field(discriminator="kind"),
]
"""Body of a message on stream `task.query`."""
