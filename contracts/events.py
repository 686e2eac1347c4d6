"""Entries of the audit log, also appended to stream `task.events`.

Every change, and every create or delete the worker refused, becomes one event
with a gap-free sequence number `seq`. Events form a hash chain: `hash` is the
SHA-256 of `prev_hash` followed by the event's canonical JSON without `hash`
(keys sorted, no spaces, UTF-8), so editing, removing or reordering an event
breaks every later link. `tasks audit verify` recomputes the chain.
"""

from enum import StrEnum
from typing import Any
from uuid import UUID

import orjson
from pydantic import AwareDatetime

from contracts._base import Published
from contracts.replies import ErrorBody, Task

GENESIS_HASH = "0" * 64
"""The `prev_hash` of the first event ever logged."""


class EventType(StrEnum):
    TASK_CREATED = "task.created"
    TASK_DELETED = "task.deleted"
    #: A create the worker refused: invalid, malformed, or the name was taken.
    TASK_CREATE_REJECTED = "task.create_rejected"
    #: A delete the worker refused: invalid, malformed, or no such task.
    TASK_DELETE_REJECTED = "task.delete_rejected"

    @property
    def is_change(self) -> bool:
        return self in (EventType.TASK_CREATED, EventType.TASK_DELETED)


class TaskEvent(Published):
    """One entry of the audit log.

    `task` is the task after a create and as it was before a delete (absent on a
    rejection); `task_id` names the task concerned, when there is one, rejected
    deletes included; `reason` says why a command was rejected. `causation_id` is
    the message id of the command, `source` the producing service it declared.
    """

    seq: int
    event_id: UUID
    type: EventType
    occurred_at: AwareDatetime
    correlation_id: str
    causation_id: str
    source: str | None = None
    task_id: UUID | None = None
    task: Task | None = None
    reason: ErrorBody | None = None
    prev_hash: str
    hash: str


def canonical_json(event: dict[str, Any]) -> bytes:
    """The bytes an event's hash covers: every field but `hash`, keys sorted."""
    unhashed = {key: value for key, value in event.items() if key != "hash"}
    return orjson.dumps(unhashed, option=orjson.OPT_SORT_KEYS)


class EventPage(Published):
    """Events in log order; ask again with `after_seq = last_seq` for more."""

    items: list[TaskEvent]
    last_seq: int
