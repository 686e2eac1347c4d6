"""Relaying committed events from the outbox table to their Redis streams."""

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from contracts.streams import DATA_FIELD
from worker.repository.database import brief, database_unavailable
from worker.repository.unit_of_work import UnitOfWorkFactory

logger = logging.getLogger(__name__)

RELAY_BATCH = 500
RELAY_LOCK = "task.outbox.relay-lock"
RELAY_LOCK_TTL_S = 10.0

IDLE_POLL_S = 0.25
MAX_BACKOFF_S = 5.0


class EventRelay:
    """Appends outbox events to their streams in commit order, then drops them.

    An event leaves the outbox only after Redis accepted it, so a relay that fails
    (Redis down, worker killed) sends it again later under the same `event_id`.
    One worker at a time relays, holding a Redis lock, so that events of one task
    reach the stream in the order their changes committed; when the holder dies,
    another takes over once the lock expires.
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
        self._lock = redis.lock(
            RELAY_LOCK, timeout=RELAY_LOCK_TTL_S, blocking=False, thread_local=False
        )

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

            except Exception as error:
                level, waiting_for = _diagnose(error)
                logger.log(
                    level,
                    "event relay waiting: %s (%s); retry in %.1fs",
                    waiting_for,
                    brief(error),
                    backoff_s,
                    exc_info=level >= logging.ERROR,
                )
                await self._sleep(backoff_s)
                backoff_s = min(backoff_s * 2, MAX_BACKOFF_S)

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def relay_pending(self) -> int:
        """Relay every event in the outbox; returns how many were appended.

        Returns at once while another worker holds the relay lock; the lock is
        renewed before every batch so that a long backlog keeps it.
        """
        relayed = 0
        while await self._hold_lock():
            count = await self._relay_some()
            relayed += count
            if count < RELAY_BATCH:
                break
        return relayed

    async def _relay_some(self) -> int:
        # Read, append, then discard in a second transaction: the database is not
        # held while Redis answers. A crash in between relays these events again.
        async with self._new_unit_of_work(read_only=True) as uow:
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

        async with self._new_unit_of_work() as uow:
            await uow.outbox.discard([event.seq for event in events])
            await uow.commit()

        logger.debug("relayed events=%d", len(events))
        return len(events)

    async def release(self) -> None:
        """Let another worker relay now rather than when the lock expires."""
        if await self._lock.owned():
            await self._lock.release()

    async def _hold_lock(self) -> bool:
        if await self._lock.owned():
            return bool(await self._lock.reacquire())
        return bool(await self._lock.acquire())

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()


def _diagnose(error: Exception) -> tuple[int, str]:
    """How loudly to log a relay failure, and what the relay is waiting for."""
    if isinstance(error, RedisError):
        return logging.WARNING, "redis unavailable"
    if database_unavailable(error):
        return logging.WARNING, "database unavailable"
    return logging.ERROR, "unexpected failure"
