"""Bookkeeping tables written in the same transaction as the change they belong to.

Rows are staged in memory and written by `flush` as one multi-row INSERT per table:
the ORM would insert outbox rows one by one to learn their generated `seq`, which
the worker never needs.
"""

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from worker.repository.base import Repository
from worker.repository.records import OutboxEvent, ProcessedCommand


class _StagedRows:
    def __init__(self, session: AsyncSession, record_type: type[Any]) -> None:
        self._session = session
        self._record_type = record_type
        self._rows: list[dict[str, Any]] = []

    def stage(self, **row: Any) -> None:
        self._rows.append(row)

    async def flush(self) -> None:
        rows, self._rows = self._rows, []
        if rows:
            await self._session.execute(insert(self._record_type), rows)


class ProcessedCommands(Repository[ProcessedCommand]):
    record_type = ProcessedCommand

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self._staged = _StagedRows(session, ProcessedCommand)

    async def outcomes_of(
        self, stream: str, message_ids: Collection[str]
    ) -> dict[str, str]:
        """The stored outcomes of whichever of these commands were already applied."""
        if not message_ids:
            return {}
        query = select(ProcessedCommand.message_id, ProcessedCommand.reply).where(
            ProcessedCommand.stream == stream,
            ProcessedCommand.message_id.in_(message_ids),
        )
        rows = await self.session.execute(query)
        return {message_id: reply for message_id, reply in rows}

    def remember(
        self, stream: str, message_id: str, outcome: str, at: datetime
    ) -> None:
        """Stage the outcome of a command so that a redelivered copy reuses it."""
        self._staged.stage(
            stream=stream, message_id=message_id, reply=outcome, processed_at=at
        )

    async def flush(self) -> None:
        await self._staged.flush()

    async def forget_before(self, cutoff: datetime) -> int:
        """Drop the records of commands processed before `cutoff`; returns how many."""
        query = delete(ProcessedCommand).where(ProcessedCommand.processed_at < cutoff)
        result = await self.session.execute(query)
        return int(getattr(result, "rowcount", 0) or 0)


class Outbox(Repository[OutboxEvent]):
    record_type = OutboxEvent

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self._staged = _StagedRows(session, OutboxEvent)

    def stage(self, event_id: UUID, stream: str, payload: str, at: datetime) -> None:
        """Stage an event to be appended to `stream` once the change commits."""
        self._staged.stage(
            event_id=event_id, stream=stream, payload=payload, created_at=at
        )

    async def flush(self) -> None:
        await self._staged.flush()

    async def oldest(self, limit: int) -> Sequence[Row[int, UUID, str, str]]:
        """Events not yet relayed, in commit order, as plain rows.

        Rows of `seq, event_id, stream, payload` stay readable after the
        transaction, unlike records, which its rollback would expire.
        """
        query = (
            select(
                OutboxEvent.seq,
                OutboxEvent.event_id,
                OutboxEvent.stream,
                OutboxEvent.payload,
            )
            .order_by(OutboxEvent.seq)
            .limit(limit)
        )
        return (await self.session.execute(query)).all()

    async def discard(self, seqs: Sequence[int]) -> None:
        """Remove events that have reached their stream."""
        query = delete(OutboxEvent).where(OutboxEvent.seq.in_(seqs))
        await self.session.execute(query)
