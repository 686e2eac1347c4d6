"""Bookkeeping tables written in the same transaction as the change they belong to."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, select

from worker.repository.base import Repository
from worker.repository.records import OutboxEvent, ProcessedCommand


class ProcessedCommands(Repository[ProcessedCommand]):
    record_type = ProcessedCommand

    async def outcome_of(self, stream: str, message_id: str) -> str | None:
        """The stored outcome of a command already applied, or None."""
        record = await self.get((stream, message_id))
        return None if record is None else record.reply

    def remember(
        self, stream: str, message_id: str, outcome: str, at: datetime
    ) -> None:
        """Stage the outcome of a command so that a redelivered copy reuses it."""
        record = ProcessedCommand(
            stream=stream,
            message_id=message_id,
            reply=outcome,
            processed_at=at,
        )
        self.add(record)

    async def forget_before(self, cutoff: datetime) -> int:
        """Drop the records of commands processed before `cutoff`; returns how many."""
        query = delete(ProcessedCommand).where(ProcessedCommand.processed_at < cutoff)
        result = await self.session.execute(query)
        return int(getattr(result, "rowcount", 0) or 0)


class Outbox(Repository[OutboxEvent]):
    record_type = OutboxEvent

    def stage(self, event_id: UUID, stream: str, payload: str, at: datetime) -> None:
        """Stage an event to be appended to `stream` once the change commits."""
        record = OutboxEvent(
            event_id=event_id,
            stream=stream,
            payload=payload,
            created_at=at,
        )
        self.add(record)

    async def oldest(self, limit: int) -> Sequence[OutboxEvent]:
        """Events not yet relayed, in the order their changes committed."""
        query = select(OutboxEvent).order_by(OutboxEvent.seq).limit(limit)
        return (await self.session.scalars(query)).all()

    async def discard(self, seqs: Sequence[int]) -> None:
        """Remove events that have reached their stream."""
        query = delete(OutboxEvent).where(OutboxEvent.seq.in_(seqs))
        await self.session.execute(query)
