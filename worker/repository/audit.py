"""The audit log: events numbered without gaps and chained by hash, in the database.

Numbers are handed out at the end of each transaction under a lock on the single
`audit_head` row, so that a transaction that rolls back consumes none and the log's
order is the order in which transactions committed.
"""

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import EVENTS_STREAM, ErrorBody, EventPage, EventType, Task, TaskEvent
from contracts.events import canonical_json
from worker.repository.commands import Outbox
from worker.repository.records import AuditHead, AuditRecord

HEAD_ID = 1
EXPORT_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event before the log numbers and chains it."""

    event_id: UUID
    type: EventType
    occurred_at: datetime
    correlation_id: str
    causation_id: str
    source: str | None = None
    task_id: UUID | None = None
    task: Task | None = None
    reason: ErrorBody | None = None


@dataclass(frozen=True, slots=True)
class ChainStart:
    """Where the kept chain begins: its first seq and the hash before it."""

    first_seq: int
    prev_hash: str
    last_seq: int


def chain_hash(prev_hash: str, event: dict[str, Any]) -> str:
    """The hash of an event (as JSON-ready data) that follows `prev_hash`."""
    return hashlib.sha256(prev_hash.encode() + canonical_json(event)).hexdigest()


class AuditLog:
    """Records events in the unit of work; `append` numbers and writes them."""

    def __init__(self, session: AsyncSession, outbox: Outbox) -> None:
        self.session = session
        self._outbox = outbox
        self._drafts: list[EventDraft] = []

    def record(self, draft: EventDraft) -> None:
        self._drafts.append(draft)

    async def append(self) -> int:
        """Number, chain and write the recorded events, and stage them for relay.

        Returns how many were appended.
        """
        drafts, self._drafts = self._drafts, []
        if not drafts:
            return 0

        last_seq, last_hash = await self._lock_head()
        rows = []
        for draft in drafts:
            last_seq += 1
            row = _chained(draft, last_seq, last_hash)
            last_hash = row["hash"]
            rows.append(row)
            self._outbox.stage(
                draft.event_id, EVENTS_STREAM, row["payload"], draft.occurred_at
            )

        await self.session.execute(insert(AuditRecord), rows)
        await self.session.execute(
            update(AuditHead)
            .where(AuditHead.id == HEAD_ID)
            .values(last_seq=last_seq, last_hash=last_hash)
        )
        return len(rows)

    async def history(self, task_id: UUID) -> list[TaskEvent]:
        """The events of one task, rejected deletes of its id included, in order."""
        query = (
            select(AuditRecord.payload)
            .where(AuditRecord.task_id == task_id)
            .order_by(AuditRecord.seq)
        )
        payloads = await self.session.scalars(query)
        return [TaskEvent.model_validate_json(payload) for payload in payloads]

    async def page(
        self, after_seq: int, limit: int, event_type: EventType | None = None
    ) -> EventPage:
        """Up to `limit` events after `after_seq`, optionally of one type."""
        query = self._selection(event_type=event_type).where(
            AuditRecord.seq > after_seq
        )
        payloads = (await self.session.scalars(query.limit(limit))).all()
        items = [TaskEvent.model_validate_json(payload) for payload in payloads]
        return EventPage(items=items, last_seq=items[-1].seq if items else after_seq)

    async def stream(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        event_type: EventType | None = None,
    ) -> AsyncIterator[tuple[int, str, str]]:
        """`(seq, payload, hash)` of every kept event in order, read in chunks.

        Memory stays flat however long the log: rows are fetched as they are used.
        """
        query = self._selection(since, until, event_type).with_only_columns(
            AuditRecord.seq, AuditRecord.payload, AuditRecord.hash
        )
        result = await self.session.stream(
            query.execution_options(yield_per=EXPORT_CHUNK)
        )
        async for seq, payload, digest in result:
            yield seq, payload, digest

    async def payload_of(self, seq: int) -> str | None:
        """The logged JSON of one event, or None."""
        query = select(AuditRecord.payload).where(AuditRecord.seq == seq)
        return await self.session.scalar(query)

    async def seq_of(self, event_id: UUID) -> int | None:
        query = select(AuditRecord.seq).where(AuditRecord.event_id == event_id)
        return await self.session.scalar(query)

    async def chain_start(self) -> ChainStart:
        row = (
            await self.session.execute(
                select(
                    AuditHead.first_seq, AuditHead.first_prev_hash, AuditHead.last_seq
                )
            )
        ).one()
        return ChainStart(first_seq=row[0], prev_hash=row[1], last_seq=row[2])

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count(AuditRecord.seq))) or 0)

    async def forget_before(self, cutoff: datetime) -> int:
        """Remove events older than `cutoff`, keeping the chain checkable.

        The head records where the kept chain starts: the first kept event and the
        hash before it or, when every event is older, the next seq and the last hash.
        """
        keep_from = await self.session.scalar(
            select(func.min(AuditRecord.seq)).where(AuditRecord.occurred_at >= cutoff)
        )
        if keep_from is None:
            # Locked, so that no event is appended between reading the end of the
            # chain and removing everything before it.
            last_seq, prev_hash = await self._lock_head()
            keep_from = last_seq + 1
        else:
            first = await self.session.scalar(
                select(AuditRecord.payload).where(AuditRecord.seq == keep_from)
            )
            assert first is not None
            prev_hash = TaskEvent.model_validate_json(first).prev_hash

        result = await self.session.execute(
            delete(AuditRecord).where(AuditRecord.seq < keep_from)
        )
        forgotten = int(getattr(result, "rowcount", 0) or 0)
        if not forgotten:
            return 0
        await self.session.execute(
            update(AuditHead)
            .where(AuditHead.id == HEAD_ID)
            .values(first_seq=keep_from, first_prev_hash=prev_hash)
        )
        return forgotten

    def _selection(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        event_type: EventType | None = None,
    ) -> Select[str]:
        query = select(AuditRecord.payload).order_by(AuditRecord.seq)
        if since is not None:
            query = query.where(AuditRecord.occurred_at >= since)
        if until is not None:
            query = query.where(AuditRecord.occurred_at < until)
        if event_type is not None:
            query = query.where(AuditRecord.type == event_type.value)
        return query

    async def _lock_head(self) -> tuple[int, str]:
        # FOR UPDATE serializes appenders on PostgreSQL; SQLite has one writer.
        query = (
            select(AuditHead.last_seq, AuditHead.last_hash)
            .where(AuditHead.id == HEAD_ID)
            .with_for_update()
        )
        last_seq, last_hash = (await self.session.execute(query)).one()
        return int(last_seq), str(last_hash)


def _chained(draft: EventDraft, seq: int, prev_hash: str) -> dict[str, Any]:
    """The audit_log row of a draft: its JSON (as `TaskEvent` reads it) and hash."""
    event: dict[str, Any] = {
        "seq": seq,
        "event_id": str(draft.event_id),
        "type": draft.type.value,
        "occurred_at": draft.occurred_at.isoformat().replace("+00:00", "Z"),
        "correlation_id": draft.correlation_id,
        "causation_id": draft.causation_id,
        "source": draft.source,
        "task_id": None if draft.task_id is None else str(draft.task_id),
        "task": None if draft.task is None else draft.task.model_dump(mode="json"),
        "reason": None
        if draft.reason is None
        else draft.reason.model_dump(mode="json"),
        "prev_hash": prev_hash,
    }
    event["hash"] = chain_hash(prev_hash, event)
    return {
        "seq": seq,
        "event_id": draft.event_id,
        "type": event["type"],
        "occurred_at": draft.occurred_at,
        "task_id": draft.task_id,
        "source": draft.source,
        "payload": orjson.dumps(event, option=orjson.OPT_SORT_KEYS).decode(),
        "hash": event["hash"],
    }
