"""Bodies of the messages that services publish to the worker."""

import re
import unicodedata
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, StringConstraints

from contracts._base import Contract
from contracts.events import EventType

MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 2000
MAX_MODELS = 256
MAX_MODEL_URI_CHARS = 512
MAX_LIST_LIMIT = 1000

# Beyond what OFFSET accepts as a 64-bit integer on every database.
MAX_SKIP = 2**63 - 1

# `scheme://rest`, the scheme as RFC 3986 defines it, the rest without spaces or
# control characters.
MODEL_URI_PATTERN = r"^[A-Za-z][A-Za-z0-9+.\-]*://[^\s\x00-\x1f\x7f-\x9f]+$"

_MODEL_URI = re.compile(MODEL_URI_PATTERN)

# Text holds no control characters (C0, DEL, C1) but tab and line breaks (in
# descriptions): PostgreSQL refuses NUL in text, and the others only garble logs
# and terminals.
_CONTROL_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Names are read by people and looked up by others: control characters, line
# breaks and characters that show nothing (zero-width spaces, direction overrides,
# byte order marks, variation selectors, Hangul fillers, the blank braille cell)
# would make names that look alike but differ.
_UNSEEN_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}
# Unicode's Default_Ignorable_Code_Point ranges that are not format characters,
# and U+2800, which renders blank.
_UNSEEN_RANGES = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x2065, 0x2065),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0xE0100, 0xE01EF),
)


def _not_nil(task_id: UUID) -> UUID:
    if task_id.int == 0:
        raise ValueError("the nil UUID names no task")
    return task_id


def _unseen(char: str) -> bool:
    if unicodedata.category(char) in _UNSEEN_CATEGORIES:
        return True
    code = ord(char)
    return any(first <= code <= last for first, last in _UNSEEN_RANGES)


def _task_name(name: str) -> str:
    """The name in Unicode NFC, so that names that look the same are the same."""
    if any(_unseen(char) for char in name):
        raise ValueError(
            "control characters, line breaks and characters that show nothing "
            "(zero-width, direction overrides, variation selectors, fillers) are "
            "not allowed"
        )
    return unicodedata.normalize("NFC", name)


def _only_layout_controls(text: str) -> str:
    if _CONTROL_BUT_LAYOUT.search(text):
        raise ValueError(
            "control characters other than tab and newline are not allowed"
        )
    return text


def _model_uri(uri: str) -> str:
    if not _MODEL_URI.fullmatch(uri):
        raise ValueError(
            "expected a model URI such as hf://facebook/bart-large-cnn: a scheme, "
            "'://', then no spaces or control characters"
        )
    return uri


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
    AfterValidator(_task_name),
]

ModelUri = Annotated[
    str,
    StringConstraints(max_length=MAX_MODEL_URI_CHARS),
    AfterValidator(_model_uri),
    Field(json_schema_extra={"pattern": MODEL_URI_PATTERN}),
]


class CreateTask(Contract):
    """Register a task and the models to evaluate for it (stream `task.create`)."""

    name: TaskName
    description: Annotated[
        str,
        StringConstraints(max_length=MAX_DESCRIPTION_CHARS),
        AfterValidator(_only_layout_controls),
    ] = ""
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
    skip: Annotated[int, Field(ge=0, le=MAX_SKIP)] = 0
    limit: Annotated[int, Field(ge=1, le=MAX_LIST_LIMIT)] = 100


class TaskModels(Contract):
    """Ask for the model list of the task with this name."""

    kind: Literal["models"]
    name: TaskName


class TaskHistory(Contract):
    """Ask for the audited events of one task, oldest first."""

    kind: Literal["history"]
    id: TaskId


class AuditEvents(Contract):
    """Ask for a page of the audit log after `after_seq`, optionally of one type."""

    kind: Literal["events"]
    after_seq: Annotated[int, Field(ge=0, le=MAX_SKIP)] = 0
    limit: Annotated[int, Field(ge=1, le=MAX_LIST_LIMIT)] = 100
    type: EventType | None = None


TaskQuery = Annotated[
    GetTask | ListTasks | TaskModels | TaskHistory | AuditEvents,
    Field(discriminator="kind"),
]
"""Body of a message on stream `task.query`."""
