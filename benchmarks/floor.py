"""The floor: a bare redis-py consumer-group loop, with no database and no framework.

It reads batches of up to 100 entries per stream with XREADGROUP, publishes one
canned reply per entry that names `reply_to`, and acks the batch, all in one
pipeline. Run as `python -m benchmarks.floor --redis-url URL`; it prints
`floor ready` once its groups exist and stops on SIGTERM.
"""

import argparse
import asyncio
import signal
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from contracts.streams import (
    CORRELATION_ID_FIELD,
    CREATE_STREAM,
    QUERY_STREAM,
    REPLY_TO_FIELD,
)

GROUP = "bench-floor"
CONSUMER = "floor-1"
BATCH_SIZE = 100
BLOCK_MS = 100
READY_LINE = "floor ready"

_REPLY_TO = REPLY_TO_FIELD.encode()
_CORRELATION_ID = CORRELATION_ID_FIELD.encode()

# As long as a task the worker returns, so that reply sizes are alike.
CANNED_TASK = {
    "id": "5f0c6a1e-3b7d-4c2a-9e8f-1a2b3c4d5e6f",
    "name": "floor-task",
    "description": "",
    "created_at": "2026-12-04T10:00:00.000000Z",
    "models": ["hf://bench/model-a", "hf://bench/model-b"],
}

StreamEntry = tuple[bytes, dict[bytes, bytes]]


async def create_groups(redis: Redis) -> None:
    for stream in (CREATE_STREAM, QUERY_STREAM):
        try:
            await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise


def canned_reply(correlation_id: bytes) -> bytes:
    reply = {"correlation_id": correlation_id.decode(), "ok": True}
    return orjson.dumps(reply | {"result": CANNED_TASK})


async def answer_and_ack(
    redis: Redis, stream: bytes, entries: list[StreamEntry]
) -> None:
    """One pipeline: a reply per entry that asks for one, then one XACK."""
    async with redis.pipeline(transaction=False) as pipe:
        for _, fields in entries:
            reply_to = fields.get(_REPLY_TO)
            if reply_to:
                pipe.publish(reply_to, canned_reply(fields.get(_CORRELATION_ID, b"")))
        pipe.xack(stream, GROUP, *(entry_id for entry_id, _ in entries))
        await pipe.execute()


async def consume(redis: Redis, stopping: asyncio.Event) -> None:
    streams: Any = {CREATE_STREAM: ">", QUERY_STREAM: ">"}
    while not stopping.is_set():
        response: Any = await redis.xreadgroup(
            GROUP, CONSUMER, streams, count=BATCH_SIZE, block=BLOCK_MS
        )
        for stream, entries in response or []:
            if entries:
                await answer_and_ack(redis, stream, entries)


async def serve(redis_url: str) -> None:
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    redis = Redis.from_url(redis_url)
    try:
        await create_groups(redis)
        print(READY_LINE, flush=True)
        await consume(redis, stopping)
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor")
    parser.add_argument("--redis-url", required=True)
    asyncio.run(serve(parser.parse_args().redis_url))


if __name__ == "__main__":
    main()
