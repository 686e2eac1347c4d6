"""Taking over entries that were read but never acknowledged.

FastStream's group reader asks only for new entries (`>`). Entries this consumer
read before a restart, and entries left by a consumer that died, would stay pending
for ever; this module hands them to the same `CommandConsumer`.
"""

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from worker.transport.consumer import CommandConsumer
from worker.transport.entries import Delivery, read_entry

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 5.0

StreamEntry = tuple[bytes, dict[bytes, bytes] | None]


class PendingRecovery:
    """Finishes this consumer's own pending entries, then claims abandoned ones."""

    def __init__(
        self,
        redis: Redis,
        consumer: CommandConsumer,
        streams: Sequence[str],
        claim_idle_ms: int,
        batch_size: int,
    ) -> None:
        self._redis = redis
        self._consumer = consumer
        self._streams = streams
        self._claim_idle_ms = claim_idle_ms
        self._batch_size = batch_size
        self._stopping = asyncio.Event()
        self.recovered = 0

    @property
    def _group(self) -> str:
        return self._consumer.config.group

    @property
    def _name(self) -> str:
        return self._consumer.config.consumer

    async def finish_own(self) -> int:
        """Apply the entries this consumer name read but did not acknowledge."""
        finished = 0
        for stream in self._streams:
            while entries := await self._read_own_pending(stream):
                await self._consume(stream, entries)
                finished += len(entries)
        if finished:
            logger.info("finished own pending entries count=%d", finished)
        return finished

    async def claim_abandoned(self) -> int:
        """Claim and apply entries idle past the claim time, from any consumer."""
        claimed = 0
        for stream in self._streams:
            start_id: bytes | str = "0-0"
            while True:
                next_id, entries = await self._autoclaim(stream, start_id)
                if entries:
                    await self._consume(stream, entries)
                    claimed += len(entries)
                if next_id in (b"0-0", "0-0"):
                    break
                start_id = next_id
        if claimed:
            self.recovered += claimed
            logger.warning(
                "claimed abandoned entries count=%d idle_ms>=%d",
                claimed,
                self._claim_idle_ms,
            )
        return claimed

    async def run(self, interval_s: float) -> None:
        """Claim abandoned entries every `interval_s` until `stop`."""
        backoff_s = interval_s
        while not self._stopping.is_set():
            try:
                await self.claim_abandoned()
                backoff_s = interval_s
            except (RedisError, OSError) as error:
                logger.warning(
                    "pending recovery waiting: redis unavailable (%s)", error
                )
                backoff_s = min(backoff_s * 2, MAX_BACKOFF_S)
            except Exception:
                logger.exception("pending recovery failed; retrying")
            await self._sleep(backoff_s)

    def stop(self) -> None:
        self._stopping.set()

    async def _read_own_pending(self, stream: str) -> list[StreamEntry]:
        response: Any = await self._redis.xreadgroup(
            self._group, self._name, {stream: "0"}, count=self._batch_size
        )
        return list(response[0][1]) if response else []

    async def _autoclaim(
        self, stream: str, start_id: bytes | str
    ) -> tuple[bytes | str, list[StreamEntry]]:
        response: Any = await self._redis.xautoclaim(
            stream,
            self._group,
            self._name,
            min_idle_time=self._claim_idle_ms,
            start_id=start_id,
            count=self._batch_size,
        )
        return response[0], list(response[1])

    async def _consume(self, stream: str, entries: Sequence[StreamEntry]) -> None:
        counts = await self._delivery_counts(stream, entries)
        present = [(entry_id, fields) for entry_id, fields in entries if fields]
        vanished = [entry_id for entry_id, fields in entries if not fields]
        if vanished:
            # Trimmed or deleted from the stream: there is nothing left to apply.
            await self._redis.xack(stream, self._group, *vanished)
        deliveries = [
            self._delivery(stream, entry_id, fields, counts)
            for entry_id, fields in present
        ]
        await self._consumer.consume(deliveries)

    def _delivery(
        self,
        stream: str,
        entry_id: bytes,
        fields: dict[bytes, bytes],
        counts: dict[bytes, int],
    ) -> Delivery:
        return read_entry(stream, entry_id.decode(), fields, counts.get(entry_id, 1))

    async def _delivery_counts(
        self, stream: str, entries: Sequence[StreamEntry]
    ) -> dict[bytes, int]:
        rows = await self._redis.xpending_range(
            stream,
            self._group,
            min=entries[0][0],
            max=entries[-1][0],
            count=len(entries),
            consumername=self._name,
        )
        return {
            _as_bytes(row["message_id"]): int(row["times_delivered"]) for row in rows
        }

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return


def _as_bytes(entry_id: object) -> bytes:
    return entry_id if isinstance(entry_id, bytes) else str(entry_id).encode()
