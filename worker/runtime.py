"""The running worker's resources, opened at startup and closed at shutdown."""

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.streams import COMMAND_STREAMS
from worker.embedded_redis import EmbeddedRedis, redis_answers
from worker.repository.database import (
    brief,
    create_engine,
    create_session_factory,
    database_unavailable,
    write_lock_for,
)
from worker.repository.unit_of_work import UnitOfWork, UnitOfWorkFactory
from worker.settings import WorkerSettings
from worker.transport.consumer import CommandConsumer, ConsumerConfig
from worker.transport.departed import DepartedConsumers
from worker.transport.recovery import PendingRecovery
from worker.transport.relay import EventRelay

logger = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_S = 600.0


class WorkerRuntime:
    """Connections, consumer, relay and recovery of one worker process."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._embedded: EmbeddedRedis | None = None
        self._engine: AsyncEngine | None = None
        self._redis: Redis | None = None
        self._consumer: CommandConsumer | None = None
        self._relay: EventRelay | None = None
        self._recovery: PendingRecovery | None = None
        self._background: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    @property
    def consumer(self) -> CommandConsumer:
        if self._consumer is None:
            raise RuntimeError("the worker runtime has not started")
        return self._consumer

    @property
    def recovery(self) -> PendingRecovery:
        if self._recovery is None:
            raise RuntimeError("the worker runtime has not started")
        return self._recovery

    async def start(self) -> None:
        """Connect, then finish what earlier runs left pending, before new entries."""
        settings = self.settings
        await self._ensure_redis()
        self._redis = Redis.from_url(
            settings.redis_url, socket_timeout=10.0, socket_connect_timeout=5.0
        )
        await create_groups(self._redis, settings.group)

        self._engine = create_engine(settings.database_url, settings.lock_timeout_ms)
        session_factory = create_session_factory(self._engine)
        write_lock = write_lock_for(self._engine)

        def new_unit_of_work(*, read_only: bool = False) -> UnitOfWork:
            return UnitOfWork(session_factory, write_lock, read_only=read_only)

        relay = self._start_relay(new_unit_of_work)
        self._consumer = CommandConsumer(
            self._redis, new_unit_of_work, relay, _consumer_config(settings)
        )
        await self._start_recovery(self._consumer)
        departed = DepartedConsumers(self._redis, settings.group, settings.consumer)
        self._spawn(
            _housekeeping(new_unit_of_work, departed, settings, self._stopping),
            "housekeeping",
        )
        logger.info(
            "worker connected group=%s consumer=%s redis=%s database=%s",
            settings.group,
            settings.consumer,
            settings.redis_url_for_logs,
            settings.database_url_for_logs,
        )

    async def stop(self) -> None:
        """Flush the outbox once more, then close everything that start opened."""
        if self._recovery is not None:
            self._recovery.stop()
        if self._relay is not None:
            await self._relay.stop()
        # Housekeeping finishes the pass in hand rather than being cancelled: a
        # database call cancelled midway can leave its connection unusable.
        self._stopping.set()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._flush_outbox()

        if self._redis is not None:
            await self._redis.aclose()
        if self._engine is not None:
            await self._engine.dispose()
        if self._embedded is not None:
            await self._embedded.stop()
        logger.info("worker stopped consumer=%s", self.settings.consumer)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        self._background.append(asyncio.create_task(coroutine, name=name))

    def _start_relay(self, new_unit_of_work: UnitOfWorkFactory) -> EventRelay:
        assert self._redis is not None
        self._relay = EventRelay(
            self._redis, new_unit_of_work, self.settings.events_maxlen
        )
        self._spawn(self._relay.run(), "event-relay")
        return self._relay

    async def _start_recovery(self, consumer: CommandConsumer) -> None:
        assert self._redis is not None
        settings = self.settings
        self._recovery = PendingRecovery(
            self._redis,
            consumer,
            COMMAND_STREAMS,
            claim_idle_ms=settings.claim_idle_ms,
            batch_size=settings.batch_size,
        )
        await self._recovery.finish_own()
        await self._recovery.claim_abandoned()
        self._spawn(self._recovery.run(settings.claim_interval_s), "pending-recovery")

    async def _flush_outbox(self) -> None:
        if self._relay is None:
            return
        try:
            await self._relay.relay_pending()
            await self._relay.release()
        except Exception as error:
            logger.warning(
                "outbox not flushed at shutdown (%s); next start will", error
            )

    async def _ensure_redis(self) -> None:
        settings = self.settings
        if await redis_answers(settings.redis_url):
            return
        if not (settings.embedded_redis and settings.redis_is_loopback):
            raise ConnectionError(
                f"no Redis answers at {settings.redis_url_for_logs}; start one or "
                "set TASKS_REDIS_URL"
            )
        port = urlsplit(settings.redis_url).port or 6379
        logger.info(
            "no redis answers at %s; starting the embedded one",
            settings.redis_url_for_logs,
        )
        self._embedded = EmbeddedRedis(settings.data_dir / "redis", port)
        await self._embedded.start()


def _consumer_config(settings: WorkerSettings) -> ConsumerConfig:
    return ConsumerConfig(
        group=settings.group,
        consumer=settings.consumer,
        max_deliveries=settings.max_deliveries,
        dead_letter_maxlen=settings.dead_letter_maxlen,
        claim_idle_ms=settings.claim_idle_ms,
    )


async def create_groups(redis: Redis, group: str) -> None:
    """Create the consumer group on every command stream, from its first entry.

    FastStream would create it at `$` (new entries only), which would drop commands
    published before the first worker ever started.
    """
    for stream in COMMAND_STREAMS:
        try:
            await redis.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise


async def forget_expired(
    new_unit_of_work: UnitOfWorkFactory, settings: WorkerSettings
) -> None:
    """Drop processed message ids, and audit events, past their retention."""
    now = datetime.now(UTC)
    async with new_unit_of_work() as uow:
        retention = timedelta(seconds=settings.processed_retention_s)
        forgotten = await uow.processed.forget_before(now - retention)
        dropped = 0
        if settings.audit_retention_s:
            kept = timedelta(seconds=settings.audit_retention_s)
            dropped = await uow.audit.forget_before(now - kept)
        await uow.commit()
    if forgotten or dropped:
        logger.info(
            "housekeeping forgot processed_ids=%d audit_events=%d", forgotten, dropped
        )


async def _housekeeping(
    new_unit_of_work: UnitOfWorkFactory,
    departed: DepartedConsumers,
    settings: WorkerSettings,
    stopping: asyncio.Event,
) -> None:
    while not stopping.is_set():
        try:
            await forget_expired(new_unit_of_work, settings)
        except Exception as error:
            if not database_unavailable(error):
                raise
            logger.warning(
                "housekeeping skipped: database unavailable (%s)", brief(error)
            )
        try:
            await departed.forget(COMMAND_STREAMS)
        except (RedisError, OSError) as error:
            logger.warning("housekeeping skipped: redis unavailable (%s)", error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), HOUSEKEEPING_INTERVAL_S)
