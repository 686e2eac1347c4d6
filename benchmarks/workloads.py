"""The measured workloads: create throughput, request latency and in-flight throughput.

Each returns plain numbers; timing starts at the first request sent and stops at
the last reply (or, for creates, the last acknowledgement) observed.
"""

import asyncio
import contextlib
import io
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from benchmarks.progress import Progress

Request = Callable[[], Awaitable[Any]]
Fields = dict[FieldT, EncodableT]

PUBLISH_CHUNK = 500
DRAIN_POLL_S = 0.002


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


async def latencies_ms(request: Request, count: int, progress: Progress) -> list[float]:
    """`count` requests one at a time; each round trip in milliseconds, ascending."""
    timings: list[float] = []
    for done in range(count):
        started = time.perf_counter()
        await request()
        timings.append((time.perf_counter() - started) * 1000)
        progress.count(done + 1, count)
    return sorted(timings)


async def throughput_in_flight(
    request: Request, count: int, in_flight: int, progress: Progress
) -> float:
    """Requests per second with `in_flight` requests always outstanding."""
    tickets = iter(range(count))
    done = 0

    async def keep_sending() -> None:
        nonlocal done
        for _ in tickets:
            await request()
            done += 1
            progress.count(done, count)

    started = time.perf_counter()
    await asyncio.gather(*(keep_sending() for _ in range(in_flight)))
    return count / (time.perf_counter() - started)


async def warm_up(request: Request, count: int, in_flight: int) -> None:
    """`count` requests, `in_flight` at a time: connections and caches get made."""
    await throughput_in_flight(request, count, in_flight, Progress(io.StringIO()))


async def create_throughput(
    redis: Redis,
    stream: str,
    group: str,
    entries: Sequence[Fields],
    progress: Progress,
) -> float:
    """Creates per second: pipelined XADDs while the group consumes them.

    The run ends when the group has been handed the last entry and none is
    pending any longer, i.e. every create was applied, answered and acked.
    """
    started = time.perf_counter()
    publishing = asyncio.create_task(_publish(redis, stream, entries))
    try:
        while not publishing.done():
            await _report_acked(redis, stream, group, len(entries), progress)
        last_id = publishing.result()
        # Redis announces no acks, so the group's state is polled until drained.
        while True:
            if await _drained(redis, stream, group, last_id, len(entries), progress):
                return len(entries) / (time.perf_counter() - started)
            await asyncio.sleep(DRAIN_POLL_S)
    finally:
        publishing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publishing


async def _publish(redis: Redis, stream: str, entries: Sequence[Fields]) -> bytes:
    last_id = b""
    for start in range(0, len(entries), PUBLISH_CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for fields in itertools.islice(entries, start, start + PUBLISH_CHUNK):
                pipe.xadd(stream, fields)
            entry_ids = await pipe.execute()
        last_id = entry_ids[-1]
    return last_id


async def _report_acked(
    redis: Redis, stream: str, group: str, total: int, progress: Progress
) -> None:
    info = await _group_info(redis, stream, group)
    progress.count(_acked(info), total)
    await asyncio.sleep(DRAIN_POLL_S * 5)


async def _drained(
    redis: Redis,
    stream: str,
    group: str,
    last_id: bytes,
    total: int,
    progress: Progress,
) -> bool:
    info = await _group_info(redis, stream, group)
    progress.count(_acked(info), total)
    delivered = _entry_id(info["last-delivered-id"])
    return delivered >= _entry_id(last_id) and int(info["pending"]) == 0


async def _group_info(redis: Redis, stream: str, group: str) -> dict[str, Any]:
    for info in await redis.xinfo_groups(stream):
        if _text(info["name"]) == group:
            return dict(info)
    raise RuntimeError(f"stream {stream} has no consumer group {group}")


def _acked(info: dict[str, Any]) -> int:
    read = info.get("entries-read")
    return int(read or 0) - int(info["pending"])


def _entry_id(value: bytes | str) -> tuple[int, int]:
    milliseconds, _, sequence = _text(value).partition("-")
    return int(milliseconds), int(sequence or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
