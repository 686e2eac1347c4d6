"""The bus as other languages see it: real `redis-cli` entries and FastStream's own."""

import asyncio
import json
from typing import Any

import pytest
from faststream import FastStream
from faststream.redis import BinaryMessageFormatV1, RedisBroker
from redis.asyncio import Redis

from contracts import EVENTS_STREAM
from contracts.client import TaskClient
from contracts.errors import RequestTimeout
from contracts.streams import DEAD_LETTER_STREAM
from worker.settings import WorkerSettings
from worker.transport.app import build_app

BART = "hf://facebook/bart-large-cnn"


async def redis_cli(redis_url: str, *arguments: str, script: str = "") -> str:
    """Run `redis-cli`; with `script`, it reads those command lines from stdin."""
    process = await asyncio.create_subprocess_exec(
        "redis-cli",
        "-u",
        redis_url,
        *arguments,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate(script.encode())
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


async def xadd(redis_url: str, stream: str, body: object, **fields: str) -> None:
    """Append a plain entry the way a service in another language would."""
    data = body if isinstance(body, str) else json.dumps(body)
    pairs = [part for item in fields.items() for part in item]
    await redis_cli(redis_url, "XADD", stream, "*", "data", data, *pairs)


def cli_quoted(value: bytes) -> str:
    """`value` as one `redis-cli` argument, every byte escaped: any bytes go."""
    return '"' + "".join(f"\\x{byte:02x}" for byte in value) + '"'


async def xadd_together(
    redis_url: str, stream: str, *entries: dict[str, bytes]
) -> list[bytes]:
    """Append entries in one MULTI/EXEC, so that one read of the worker takes all.

    The fields go through `redis-cli` byte for byte, as a service that writes
    whatever bytes it likes would send them. Returns the entry ids.
    """
    lines = ["MULTI"]
    for fields in entries:
        pairs = (f"{cli_quoted(k.encode())} {cli_quoted(v)}" for k, v in fields.items())
        lines.append(f"XADD {stream} * {' '.join(pairs)}")
    lines.append("EXEC")

    output = await redis_cli(redis_url, script="\n".join(lines) + "\n")

    return [line.encode() for line in output.splitlines()[-len(entries) :]]


class ReplyListener:
    """`redis-cli SUBSCRIBE` on one channel, read line by line like any client would."""

    def __init__(self, redis_url: str, channel: str) -> None:
        self.redis_url = redis_url
        self.channel = channel
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> "ReplyListener":
        self.process = await asyncio.create_subprocess_exec(
            "redis-cli",
            "-u",
            self.redis_url,
            "SUBSCRIBE",
            self.channel,
            stdout=asyncio.subprocess.PIPE,
        )
        assert await self._lines(3) == ["subscribe", self.channel, "1"]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def reply(self, timeout_s: float = 5.0) -> dict[str, Any]:
        kind, channel, payload = await asyncio.wait_for(self._lines(3), timeout_s)
        assert (kind, channel) == ("message", self.channel)
        reply: dict[str, Any] = json.loads(payload)
        return reply

    async def _lines(self, count: int) -> list[str]:
        assert self.process is not None and self.process.stdout is not None
        return [
            (await self.process.stdout.readline()).decode().rstrip("\n")
            for _ in range(count)
        ]


async def test_plain_entries_from_redis_cli_run_the_whole_lifecycle(
    worker: FastStream, redis_url: str
) -> None:
    channel = "replies.svc-a"
    async with ReplyListener(redis_url, channel) as replies:
        create = {"name": "summarization", "models": [BART]}
        await xadd(
            redis_url, "task.create", create, reply_to=channel, correlation_id="7"
        )
        created = await replies.reply()
        task_id = created["result"]["id"]

        listing = {"kind": "list"}
        await xadd(
            redis_url, "task.query", listing, reply_to=channel, correlation_id="8"
        )
        listed = await replies.reply()

        delete = {"id": task_id}
        await xadd(
            redis_url, "task.delete", delete, reply_to=channel, correlation_id="9"
        )
        deleted = await replies.reply()

        get = {"kind": "get", "id": task_id}
        await xadd(redis_url, "task.query", get, reply_to=channel, correlation_id="10")
        missing = await replies.reply()

    assert created["correlation_id"] == "7" and created["ok"] is True
    assert created["result"]["name"] == "summarization"
    assert [task["id"] for task in listed["result"]["items"]] == [task_id]
    assert deleted == {"correlation_id": "9", "ok": True, "result": {"id": task_id}}
    assert missing["ok"] is False and missing["error"]["code"] == "not_found"

    events = await _events(redis_url, expected=2)
    assert [event["type"] for event in events] == ["task.created", "task.deleted"]
    assert {event["task"]["id"] for event in events} == {task_id}
    assert events[0]["correlation_id"] == "7"


async def _events(redis_url: str, expected: int) -> list[dict[str, Any]]:
    # The outbox relay appends events just after the commit; wait for them.
    for _ in range(100):
        output = await redis_cli(redis_url, "XRANGE", EVENTS_STREAM, "-", "+")
        lines = output.splitlines()
        payloads = [lines[i + 1] for i, line in enumerate(lines) if line == "data"]
        if len(payloads) >= expected:
            return [json.loads(payload) for payload in payloads]
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {expected} events, stream holds: {output}")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        (["data", "this is not json"], "malformed"),
        (["data", "[1, 2, 3]"], "malformed"),
        (["payload", "{}"], "malformed"),
        (["data", '{"name": "x", "models": [], "owner": "me"}'], "validation_error"),
    ],
)
async def test_bad_entries_get_an_error_reply_and_the_worker_keeps_serving(
    worker: FastStream, redis_url: str, redis: Redis, fields: list[str], code: str
) -> None:
    channel = "replies.svc-b"
    async with ReplyListener(redis_url, channel) as replies:
        await redis_cli(
            redis_url, "XADD", "task.create", "*", *fields, "reply_to", channel
        )
        refused = await replies.reply()

        good = {"name": "translation", "models": ["hf://t5-small"]}
        await xadd(redis_url, "task.create", good, reply_to=channel)
        accepted = await replies.reply()

    assert refused["ok"] is False and refused["error"]["code"] == code
    assert accepted["ok"] is True
    pending = await redis.xpending("task.create", "tasks-worker")
    assert pending["pending"] == 0


def create_entry(name: str, channel: str, correlation_id: str) -> dict[str, bytes]:
    return {
        "data": json.dumps({"name": name, "models": [BART]}).encode(),
        "reply_to": channel.encode(),
        "correlation_id": correlation_id.encode(),
    }


async def dead_letters(redis: Redis) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in await redis.xrange(DEAD_LETTER_STREAM)]


NOT_UTF8_BODY = b'{"name": "caf\xff", "models": []}'
NOT_UTF8 = {
    "data": NOT_UTF8_BODY,
    "message_id": b"msg-\xff",
    "correlation_id": b"c-\xff",
    "source": b"svc-\xff",
}


@pytest.mark.parametrize("field", NOT_UTF8)
async def test_an_entry_with_bytes_that_are_not_utf8_fails_alone_and_at_once(
    worker: FastStream, redis_url: str, redis: Redis, field: str
) -> None:
    channel = "replies.svc-c"
    bad = create_entry("bad", channel, "c-2") | {field: NOT_UTF8[field]}

    async with ReplyListener(redis_url, channel) as replies:
        entry_ids = await xadd_together(
            redis_url,
            "task.create",
            create_entry("first", channel, "c-1"),
            bad,
            create_entry("last", channel, "c-3"),
        )
        # Far sooner than the claim of abandoned entries (30 s) would answer them.
        answers = [await replies.reply(timeout_s=2.0) for _ in entry_ids]

    assert [answer["ok"] for answer in answers] == [True, False, True]
    refused = answers[1]
    assert refused["error"]["code"] == "malformed"
    unreadable_id = field == "correlation_id"
    assert refused["correlation_id"] == (
        entry_ids[1].decode() if unreadable_id else "c-2"
    )
    (dead,) = await dead_letters(redis)
    assert dead[field.encode()] == NOT_UTF8[field]
    assert dead[b"dead_letter.entry_id"] == entry_ids[1]
    assert dead[b"dead_letter.code"] == b"malformed"
    pending = await redis.xpending("task.create", "tasks-worker")
    assert pending["pending"] == 0


async def test_an_entry_whose_reply_to_is_not_utf8_is_refused_unanswered(
    worker: FastStream, redis_url: str, redis: Redis
) -> None:
    channel = "replies.svc-c"
    bad = create_entry("bad", channel, "c-2") | {"reply_to": b"replies.\xff"}

    async with ReplyListener(redis_url, channel) as replies:
        entry_ids = await xadd_together(
            redis_url,
            "task.create",
            create_entry("first", channel, "c-1"),
            bad,
            create_entry("last", channel, "c-3"),
        )
        answers = [await replies.reply(timeout_s=2.0) for _ in range(2)]

    assert [answer["correlation_id"] for answer in answers] == ["c-1", "c-3"]
    (dead,) = await dead_letters(redis)
    assert dead[b"reply_to"] == b"replies.\xff"
    assert dead[b"dead_letter.entry_id"] == entry_ids[1]
    assert dead[b"dead_letter.code"] == b"malformed"


async def broken_envelope(where: str) -> bytes:
    """A FastStream envelope with a byte that is not UTF-8 in a header or the body."""
    if where == "header":
        return await BinaryMessageFormatV1.encode(
            message={"name": "bad", "models": [BART]},
            reply_to="replies.fs",
            headers={"source": b"svc-\xff"},
            correlation_id="fs-2",
        )
    return await BinaryMessageFormatV1.encode(
        message=NOT_UTF8_BODY,
        reply_to="replies.fs",
        headers=None,
        correlation_id="fs-2",
    )


@pytest.mark.parametrize("where", ["header", "body"])
async def test_a_faststream_envelope_that_is_not_utf8_fails_alone_and_at_once(
    worker: FastStream, redis_url: str, redis: Redis, where: str
) -> None:
    channel = "replies.svc-d"
    envelope = await broken_envelope(where)

    async with ReplyListener(redis_url, channel) as replies:
        entry_ids = await xadd_together(
            redis_url,
            "task.create",
            create_entry("first", channel, "c-1"),
            {"__data__": envelope},
            create_entry("last", channel, "c-3"),
        )
        answers = [await replies.reply(timeout_s=2.0) for _ in range(2)]

    assert [answer["correlation_id"] for answer in answers] == ["c-1", "c-3"]
    assert all(answer["ok"] for answer in answers)
    (dead,) = await dead_letters(redis)
    assert dead[b"__data__"] == envelope
    assert dead[b"dead_letter.entry_id"] == entry_ids[1]
    assert dead[b"dead_letter.code"] == b"malformed"


async def test_an_entry_with_data_and_an_envelope_is_refused_on_its_reply_to(
    worker: FastStream, redis_url: str, redis: Redis
) -> None:
    channel = "replies.svc-e"
    envelope = await BinaryMessageFormatV1.encode(
        message={"name": "from-envelope", "models": [BART]},
        reply_to="replies.fs",
        headers=None,
        correlation_id="fs-5",
    )
    both = create_entry("from-data", channel, "c-5") | {"__data__": envelope}

    async with ReplyListener(redis_url, channel) as replies:
        (entry_id,) = await xadd_together(redis_url, "task.create", both)
        refused = await replies.reply(timeout_s=2.0)

    assert refused["correlation_id"] == "c-5"
    assert refused["error"]["code"] == "malformed"
    assert "__data__" in refused["error"]["message"]
    (dead,) = await dead_letters(redis)
    assert dead[b"__data__"] == envelope
    assert dead[b"dead_letter.entry_id"] == entry_id


async def test_faststream_publish_and_request_are_understood(
    worker: FastStream, redis_url: str
) -> None:
    async with RedisBroker(redis_url) as broker:
        await broker.publish(
            {"name": "summarization", "models": [BART]}, stream="task.create"
        )
        for _ in range(100):
            response = await broker.request(
                {"kind": "models", "name": "summarization"},
                stream="task.query",
                correlation_id="fs-1",
                timeout=5,
            )
            reply = json.loads(response.body)
            if reply["ok"]:
                break
            await asyncio.sleep(0.05)

    assert response.correlation_id == "fs-1"
    assert reply == {
        "correlation_id": "fs-1",
        "ok": True,
        "result": {"total": 1, "items": [BART]},
    }


async def test_commands_published_before_the_worker_started_are_applied(
    redis_url: str, worker_settings: WorkerSettings
) -> None:
    await xadd(redis_url, "task.create", {"name": "early-bird", "models": [BART]})
    app = build_app(worker_settings)
    await app.start()
    try:
        async with TaskClient.from_url(redis_url) as client:
            for _ in range(100):
                page = await client.list()
                if page.items:
                    break
                await asyncio.sleep(0.05)
    finally:
        await app.stop()

    assert [task.name for task in page.items] == ["early-bird"]


async def test_a_request_without_a_worker_times_out(redis_url: str) -> None:
    async with TaskClient.from_url(redis_url, timeout_s=0.3) as client:
        with pytest.raises(RequestTimeout, match=r"task\.query within 0\.3s"):
            await client.list()
