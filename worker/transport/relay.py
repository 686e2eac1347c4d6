"""Relaying committed events from the outbox table to their Redis streams."""

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from contracts.streams import DATA_FIELD
from worker.repository.database import DATABASE_UNAVAILABLE
from worker.service.batches import UnitOfWorkFactory

logger = logging.getLogger(__name__)

RELAY_BATCH = 500

_WAITING_FOR: tuple[type[Exception], ...] = (RedisError, OSError, *DATABASE_UNAVAILABLE)
IDLE_POLL_S = 1.0
MAX_BACKOFF_S = 5.0


class EventRelay:
    """Appends outbox events to their streams in commit order, then drops them.

    An event leaves the outbox only after Redis accepted it, so a relay that fails
    (Redis down, worker killed) sends it again later under the same `event_id`.
    """

    def __init__(
        self,
        redis: Redis,
        new_unit_of_work: UnitOfWorkFactory,
        events_maxlen: int,
    ) -> None:
        self._redis = redis
        self._new_unit_of_work = new_unit_of_work
        self._events_maxlen = events_maxlen
        self._wake = asyncio.Event()
        self._stopping = False

    def nudge(self) -> None:
        """Relay soon: a transaction just committed events."""
        self._wake.set()

    async def run(self) -> None:
        """Relay until `stop`, waking on `nudge` or every second."""
        backoff_s = 0.1
        while not self._stopping:
            try:
                await self.relay_pending()
                backoff_s = 0.1
                await self._sleep(IDLE_POLL_S)

            except _WAITING_FOR as error:
                logger.warning(
                    "event relay waiting: %s unavailable (%s); retry in %.1fs",
                    "redis" if isinstance(error, RedisError | OSError) else "database",
                    error,
                    backoff_s,
                )
                await self._sleep(backoff_s)
                backoff_s = min(backoff_s * 2, MAX_BACKOFF_S)

            except Exception:
                logger.exception("event relay failed; retry in %.1fs", backoff_s)
                await self._sleep(backoff_s)
                backoff_s = min(backoff_s * 2, MAX_BACKOFF_S)

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def relay_pending(self) -> int:
        """Relay every event in the outbox; returns how many were appended."""
        relayed = 0
        while True:
            count = await self._relay_some()
            relayed += count
            if count < RELAY_BATCH:
                return relayed

    async def _relay_some(self) -> int:
        async with self._new_unit_of_work() as uow:
            events = await uow.outbox.oldest(RELAY_BATCH)
            if not events:
                return 0

            async with self._redis.pipeline(transaction=False) as pipe:
                for event in events:
                    pipe.xadd(
                        event.stream,
                        {DATA_FIELD: event.payload},
                        maxlen=self._events_maxlen,
                        approximate=True,
                    )
                await pipe.execute()

            await uow.outbox.discard([event.seq for event in events])
            await uow.commit()

        logger.debug("relayed events=%d", len(events))
        return len(events)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()
