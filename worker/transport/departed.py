"""Forgetting the consumers of workers that are gone.

Each worker process reads under a consumer name of its own (`<host>-<pid>` by
default), so every restart leaves a name behind in each consumer group, and
`XINFO CONSUMERS` grows without end. A name that holds no pending entries and
has not read for a day is removed.
"""

import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

logger = logging.getLogger(__name__)

DEPARTED_AFTER_MS = 24 * 3600 * 1000

# Deleting a consumer drops its pending entries from the group for good, so the
# check that it holds none and the deletion happen in one atomic step.
_FORGET_IF_EMPTY = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #pending > 0 then
  return 0
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


class DepartedConsumers:
    def __init__(self, redis: Redis, group: str, consumer: str) -> None:
        self._redis = redis
        self._group = group
        self._consumer = consumer
        self._script: Any = redis.register_script(_FORGET_IF_EMPTY)

    async def forget(
        self, streams: Sequence[str], idle_ms: int = DEPARTED_AFTER_MS
    ) -> int:
        """Remove idle consumers that hold nothing; returns how many."""
        forgotten: list[str] = []
        for stream in streams:
            for name in await self._idle_consumers(stream, idle_ms):
                if await self._script(keys=[stream], args=[self._group, name]):
                    forgotten.append(f"{stream}/{name}")
        if forgotten:
            logger.info(
                "forgot departed consumers count=%d names=%s",
                len(forgotten),
                ",".join(forgotten[:10]),
            )
        return len(forgotten)

    async def _idle_consumers(self, stream: str, idle_ms: int) -> list[str]:
        consumers: Any = await self._redis.xinfo_consumers(stream, self._group)
        return [
            _text(consumer["name"])
            for consumer in consumers
            if int(consumer["idle"]) > idle_ms
            and int(consumer["pending"]) == 0
            and _text(consumer["name"]) != self._consumer
        ]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
