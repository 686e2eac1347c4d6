"""Keeping hold of the entries a consumer is working on.

Recovery claims entries idle past `TASKS_CLAIM_IDLE_MS`. A batch that waits long for
its database must not be claimed by another worker meanwhile, and a worker that was
frozen past that time must not answer entries another worker has taken over.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# Renews, with XCLAIM JUSTID (no delivery counted), only the entries that this
# consumer still owns, and returns their ids.
_RENEW_IF_OWNED = """
local owned = {}
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    owned[#owned + 1] = ARGV[i]
  end
end
return owned
"""


class Claims:
    """Renews this consumer's hold on entries in hand, and tells which it holds."""

    def __init__(
        self, redis: Redis, group: str, consumer: str, claim_idle_ms: int
    ) -> None:
        self._redis = redis
        self._group = group
        self._consumer = consumer
        self._renew_every_s = claim_idle_ms / 3 / 1000
        self._script: Any = redis.register_script(_RENEW_IF_OWNED)

    async def still_held(self, stream: str, entry_ids: Sequence[str]) -> set[str]:
        """Renew the entries this consumer still owns; returns their ids."""
        owned = await self._script(
            keys=[stream], args=[self._group, self._consumer, *entry_ids]
        )
        return {_text(entry_id) for entry_id in owned}

    @contextlib.asynccontextmanager
    async def holding(
        self, stream: str, entry_ids: Sequence[str]
    ) -> AsyncIterator[None]:
        """Renew the hold every third of the claim idle time while the block runs."""
        renewer = asyncio.create_task(self._renew_forever(stream, entry_ids))
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _renew_forever(self, stream: str, entry_ids: Sequence[str]) -> None:
        while True:
            await asyncio.sleep(self._renew_every_s)
            try:
                await self.still_held(stream, entry_ids)
            except RedisError as error:
                logger.warning("could not renew the hold on entries in hand: %s", error)


def _text(entry_id: bytes | str) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
