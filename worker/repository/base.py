"""A generic repository over one record type; only the unit of work commits."""

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from worker.repository.records import Record

RecordT = TypeVar("RecordT", bound=Record)


class Repository(Generic[RecordT]):
    """Create, get, delete, list and count records of one table in one session."""

    record_type: type[RecordT]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, record: RecordT) -> RecordT:
        """Stage a new record; it is written at the next flush or commit."""
        self.session.add(record)
        return record

    async def get(self, key: Any) -> RecordT | None:
        """The record with this primary key, or None."""
        return await self.session.get(self.record_type, key)

    async def delete(self, record: RecordT) -> bool:
        """Stage the removal of a record loaded in this session; returns True.

        Subclasses that delete at once return whether a row was there to delete.
        """
        await self.session.delete(record)
        return True

    async def list(
        self,
        skip: int,
        limit: int,
        order_by: Sequence[InstrumentedAttribute[Any]],
    ) -> Sequence[RecordT]:
        """A page of records in the given order."""
        query = select(self.record_type).order_by(*order_by).offset(skip).limit(limit)
        return (await self.session.scalars(query)).all()

    async def count(self) -> int:
        """How many records the table holds."""
        query = select(func.count()).select_from(self.record_type)
        return (await self.session.scalar(query)) or 0
