"""`tasks audit export`: the log as JSON Lines, streamed in constant memory."""

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from contracts import EventType
from worker.repository.unit_of_work import UnitOfWork

ProgressCallback = Callable[[int], None]


class TextOutput(Protocol):
    """Where the lines go: a text file, stdout, or a wrapper of either."""

    def write(self, text: str, /) -> int: ...


async def export_events(
    uow: UnitOfWork,
    out: TextOutput,
    since: datetime | None = None,
    until: datetime | None = None,
    event_type: EventType | None = None,
    progress: ProgressCallback | None = None,
) -> int:
    """Write each event in `[since, until)` as one JSON line; returns how many."""
    written = 0
    async for _, payload, _ in uow.audit.stream(since, until, event_type):
        out.write(payload)
        out.write("\n")
        written += 1
        if progress is not None and written % 1000 == 0:
            progress(written)
    return written
