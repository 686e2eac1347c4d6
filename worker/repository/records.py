"""The tables. Alembic owns their schema (worker/migrations); keep both in step."""

from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Index,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL keeps the zone itself; SQLite stores naive text, so values are written
    in UTC and marked UTC again when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Record(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime,
        list[str]: JSON,
        dict[str, Any]: JSON,
    }


class TaskRecord(Record):
    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_created_at_id", "created_at", "id"),)

    id: Mapped[UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime]
    models: Mapped[list[str]]


class TaskTally(Record):
    """How many tasks there are (one row), changed in the transaction of each change.

    `list` reads its total here: counting the table costs time in proportion to its
    size on every page.
    """

    __tablename__ = "task_tally"

    id: Mapped[int] = mapped_column(primary_key=True)
    tasks: Mapped[int] = mapped_column(BigInteger)


class ProcessedCommand(Record):
    """A command already applied, kept so that a redelivered copy changes nothing."""

    __tablename__ = "processed_commands"
    __table_args__ = (Index("ix_processed_commands_processed_at", "processed_at"),)

    stream: Mapped[str] = mapped_column(String(200), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    reply: Mapped[str] = mapped_column(Text)
    processed_at: Mapped[datetime]


class OutboxEvent(Record):
    """An event committed with its change and not yet appended to its stream."""

    __tablename__ = "outbox"

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    event_id: Mapped[UUID] = mapped_column(unique=True)
    stream: Mapped[str] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class AuditRecord(Record):
    """One event of the audit log; `payload` is the event JSON exactly as hashed."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_task_id_seq", "task_id", "seq"),
        Index("ix_audit_log_type_seq", "type", "seq"),
        Index("ix_audit_log_occurred_at", "occurred_at"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[UUID] = mapped_column(unique=True)
    type: Mapped[str] = mapped_column(String(50))
    occurred_at: Mapped[datetime]
    task_id: Mapped[UUID | None]
    source: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Record):
    """The end of the chain (one row): the last seq and hash, locked while appending.

    `first_seq` and `first_prev_hash` say where the kept chain starts once a
    retention pass has removed older events.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    first_seq: Mapped[int] = mapped_column(BigInteger)
    first_prev_hash: Mapped[str] = mapped_column(String(64))
