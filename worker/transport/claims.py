"""Keeping hold of the entries a consumer is working on, and settling them.

Recovery claims entries idle past `TASKS_CLAIM_IDLE_MS`. A batch that waits long for
its database must not be claimed by another worker meanwhile, and a worker that was
frozen past that time must not answer entries another worker has taken over.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

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

# Answers, dead-letters and acknowledges the entries this consumer still owns, in
# one atomic step: no other consumer can claim an entry between the check and the
# ack, and a crash leaves each entry either settled or pending, never half done.
# KEYS: the command stream, the dead-letter stream. ARGV: group, consumer,
# dead-letter cap, then per entry: its id, reply channel ('' for none), reply,
# the number of dead-letter arguments (0 for none) and those arguments.
_SETTLE_IF_OWNED = """
local group, consumer, cap = ARGV[1], ARGV[2], ARGV[3]
local owned = {}
local i = 4
while i <= #ARGV do
  local id, channel, reply = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local width = tonumber(ARGV[i + 3])
  local pending = redis.call('XPENDING', KEYS[1], group, id, id, 1)
  if pending[1] and pending[1][2] == consumer then
    if channel ~= '' then
      redis.call('PUBLISH', channel, reply)
    end
    if width > 0 then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', cap, '*',
                 unpack(ARGV, i + 4, i + 3 + width))
    end
    owned[#owned + 1] = id
  end
  i = i + 4 + width
end
for first = 1, #owned, 1000 do
  redis.call('XACK', KEYS[1], group,
             unpack(owned, first, math.min(first + 999, #owned)))
end
return owned
"""


@dataclass(frozen=True, slots=True)
class Settlement:
    """How to finish one entry: its reply, if any, and its dead letter, if any."""

    entry_id: str
    reply_to: str = ""
    reply: bytes = b""
    dead_letter: dict[FieldT, EncodableT] | None = None

    def arguments(self) -> list[EncodableT]:
        dead_letter = [
            item for pair in (self.dead_letter or {}).items() for item in pair
        ]
        return [
            self.entry_id,
            self.reply_to,
            self.reply,
            len(dead_letter),
            *dead_letter,
        ]


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
        self._settle_script: Any = redis.register_script(_SETTLE_IF_OWNED)

    async def settle(
        self,
        stream: str,
        dead_letter_stream: str,
        dead_letter_cap: int,
        settlements: Sequence[Settlement],
    ) -> set[str]:
        """Answer, dead-letter and ack the entries still owned; returns their ids.

        An entry claimed by another consumer meanwhile is left to that consumer,
        which answers it from the stored outcome: answering it here too would send
        two replies.
        """
        arguments: list[EncodableT] = [self._group, self._consumer, dead_letter_cap]
        for settlement in settlements:
            arguments += settlement.arguments()
        owned = await self._settle_script(
            keys=[stream, dead_letter_stream], args=arguments
        )
        return {_text(entry_id) for entry_id in owned}

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
