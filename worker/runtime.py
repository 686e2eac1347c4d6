"""The running worker's resources, opened at startup and closed at shutdown."""

import asyncio
import logging
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.streams import COMMAND_STREAMS
from worker.embedded_redis import EmbeddedRedis, redis_answers
from worker.repository.database import create_engine, create_session_factory
from worker.repository.unit_of_work import UnitOfWork
from worker.service.batches import UnitOfWorkFactory
from worker.settings import WorkerSettings
from worker.transport.consumer import CommandConsumer
from worker.transport.relay import EventRelay

logger = logging.getLogger(__name__)


class WorkerRuntime:
    """Connections, the command consumer and the event relay of one worker process."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._embedded: EmbeddedRedis | None = None
        self._engine: AsyncEngine | None = None
        self._redis: Redis | None = None
        self._relay: EventRelay | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self._consumer: CommandConsumer | None = None

    @property
    def consumer(self) -> CommandConsumer:
        if self._consumer is None:
            raise RuntimeError("the worker runtime has not started")
        return self._consumer

    async def start(self) -> None:
        settings = self.settings
        await self._ensure_redis()

        self._engine = create_engine(settings.database_url)
        session_factory = create_session_factory(self._engine)

        def new_unit_of_work() -> UnitOfWork:
            return UnitOfWork(session_factory)

        self._redis = Redis.from_url(settings.redis_url)
        await create_groups(self._redis, settings.group)

        self._start_relay(new_unit_of_work)
        assert self._relay is not None
        self._consumer = CommandConsumer(
            self._redis, new_unit_of_work, settings.group, self._relay
        )
        logger.info(
            "worker ready group=%s consumer=%s redis=%s database=%s",
            settings.group,
            settings.consumer,
            settings.redis_url_for_logs,
            settings.database_url_for_logs,
        )

    async def stop(self) -> None:
        """Flush the outbox once more, then close everything that start opened."""
        if self._relay is not None and self._relay_task is not None:
            await self._relay.stop()
            await self._relay_task
            try:
                await self._relay.relay_pending()
            except Exception:
                logger.exception(
                    "outbox not flushed at shutdown; relayed on next start"
                )

        if self._redis is not None:
            await self._redis.aclose()
        if self._engine is not None:
            await self._engine.dispose()
        if self._embedded is not None:
            await self._embedded.stop()
        logger.info("worker stopped consumer=%s", self.settings.consumer)

    def _start_relay(self, new_unit_of_work: UnitOfWorkFactory) -> None:
        assert self._redis is not None
        self._relay = EventRelay(
            self._redis, new_unit_of_work, self.settings.events_maxlen
        )
        self._relay_task = asyncio.create_task(self._relay.run(), name="event-relay")

    async def _ensure_redis(self) -> None:
        settings = self.settings
        if await redis_answers(settings.redis_url):
            return
        if not (settings.embedded_redis and settings.redis_is_loopback):
            raise RuntimeError(
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
