"""A bounded load of plain create and delete entries, with duplicates and poison.

The driver publishes with redis-py, one pipeline per tick, every entry naming one
reply channel that it listens on with a single subscription. A create whose reply
arrives may be followed by a delete of that task; some commands are published twice
under the same `message_id` (a client retry), and a known set of poison entries is
mixed in. When a publish fails (Redis restarting), the same commands are published
again under new correlation ids: the streams tell afterwards which attempts landed.
"""

import asyncio
import contextlib
import itertools
import logging
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from contracts.client import plain_entry
from contracts.streams import (
    CREATE_STREAM,
    DATA_FIELD,
    DELETE_STREAM,
)

logger = logging.getLogger(__name__)

TICK_S = 0.02
PUBLISH_RETRY_S = 0.2
REPLY_CHANNEL_PREFIX = "faults.replies."

MODELS = ["hf://facebook/bart-large-cnn", "oai://gpt-4-turbo"]

# Entries that can never be applied, with the stream each goes to. Each one must get
# one error reply and one dead letter, and change nothing.
POISON_KINDS: tuple[tuple[str, str], ...] = (
    ("not-json", CREATE_STREAM),
    ("no-data-field", CREATE_STREAM),
    ("not-an-object", DELETE_STREAM),
    ("models-not-a-list", CREATE_STREAM),
    ("unknown-field", CREATE_STREAM),
    ("bad-model-uri", CREATE_STREAM),
    ("missing-name", CREATE_STREAM),
    ("id-not-a-uuid", DELETE_STREAM),
    ("nil-id", DELETE_STREAM),
)
# The poison whose `data` field is not the JSON of a body; None: no `data` at all.
RAW_POISON: dict[str, bytes | None] = {
    "not-json": b'{"name": "unterminated',
    "no-data-field": None,
    "not-an-object": b'["a", "b"]',
}


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """How many commands of each sort, and how fast; `*_every` spaces them by index."""

    creates: int = 1000
    delete_every: int = 2
    double_delete_every: int = 97
    twin_every: int = 50
    late_duplicate_every: int = 60
    unknown_deletes: int = 20
    poison: int = 18
    rate_per_s: float = 500.0
    # Generous: a loaded 2-core machine must not turn a slow drain into a failure.
    deadline_s: float = 90.0


@dataclass(slots=True)
class Command:
    """One logical command: every publish of it carries the same `message_id`."""

    message_id: str
    stream: str
    kind: str
    body: dict[str, Any]
    sequence: int
    poison_kind: str = ""
    target_task_id: str = ""


@dataclass(frozen=True, slots=True)
class Request:
    """One publish attempt of a command, told apart by its correlation id."""

    correlation_id: str
    message_id: str


@dataclass(slots=True)
class Reply:
    correlation_id: str
    raw: bytes
    body: dict[str, Any]

    def without_correlation(self) -> dict[str, Any]:
        return {
            key: value for key, value in self.body.items() if key != "correlation_id"
        }


@dataclass(slots=True)
class LoadRecord:
    """Everything the driver sent and heard, for the checker."""

    reply_channel: str
    commands: dict[str, Command] = field(default_factory=dict)
    requests: dict[str, Request] = field(default_factory=dict)
    replies: list[Reply] = field(default_factory=list)
    unparsable_replies: list[bytes] = field(default_factory=list)
    failed_publishes: int = 0
    timed_out: bool = False

    def commands_of(self, kind: str) -> Iterator[Command]:
        return (command for command in self.commands.values() if command.kind == kind)


class LoadDriver:
    """Use as `async with LoadDriver(url, plan) as load:`; `finished` when all sent.

    Publishing stops by itself once every command has been sent and answered, or
    at `plan.deadline_s`; listening goes on until the context exits, so that late or
    duplicate replies are still counted.
    """

    def __init__(self, redis_url: str, plan: LoadPlan) -> None:
        self.redis_url = redis_url
        self.plan = plan
        self.record = LoadRecord(reply_channel=f"{REPLY_CHANNEL_PREFIX}{uuid4().hex}")
        self.finished = asyncio.Event()
        self._sequence = itertools.count()
        self._planned: deque[Command] = deque(self._planned_commands())
        self._planned_total = len(self._planned)
        self._followups: deque[Command] = deque()
        self._answered: set[str] = set()
        self._published = asyncio.Event()
        self._redis: Redis | None = None
        self._listener_client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> "LoadDriver":
        self._redis = _client(self.redis_url)
        self._listener_client = _client(self.redis_url)
        self._pubsub = self._listener_client.pubsub()
        await self._pubsub.subscribe(self.record.reply_channel)
        async with asyncio.timeout(10.0):
            while (await self._pubsub.get_message(timeout=1.0) or {}).get(
                "type"
            ) != "subscribe":
                pass
        self._tasks = [
            asyncio.create_task(self._listen(self._pubsub)),
            asyncio.create_task(self._publish_all()),
        ]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pubsub is not None:
            await self._pubsub.aclose()
        for client in (self._listener_client, self._redis):
            if client is not None:
                await client.aclose()

    @property
    def sent_fraction(self) -> float:
        return 1 - len(self._planned) / self._planned_total

    async def wait_sent(self, fraction: float, timeout_s: float = 30.0) -> None:
        """Wait until this share of the planned commands was published."""
        async with asyncio.timeout(timeout_s):
            while self.sent_fraction < fraction:
                self._published.clear()
                await self._published.wait()

    async def subscribers(self) -> int:
        """How many subscriptions Redis counts on the reply channel (0 or 1)."""
        assert self._redis is not None
        counts: Any = await self._redis.pubsub_numsub(self.record.reply_channel)
        return int(counts[0][1])

    def unanswered(self) -> list[Command]:
        return [
            command
            for message_id, command in self.record.commands.items()
            if message_id not in self._answered
        ]

    # Publishing.

    def _planned_commands(self) -> Iterator[Command]:
        plan = self.plan
        poison_at = Counter(_spread(plan.poison, plan.creates))
        unknown_at = Counter(_spread(plan.unknown_deletes, plan.creates))
        poison_made = 0
        for index in range(plan.creates):
            yield _create(next(self._sequence), index)
            for _ in range(poison_at[index]):
                yield _poison(next(self._sequence), poison_made)
                poison_made += 1
            for _ in range(unknown_at[index]):
                yield _delete(next(self._sequence), str(uuid4()))

    async def _publish_all(self) -> None:
        per_tick = max(1, round(self.plan.rate_per_s * TICK_S))
        try:
            async with asyncio.timeout(self.plan.deadline_s):
                while not self._all_done():
                    batch = self._next_batch(per_tick)
                    if batch:
                        await self._publish_until_accepted(batch)
                        self._published.set()
                    await asyncio.sleep(TICK_S)
        except TimeoutError:
            self.record.timed_out = True
            logger.warning("load driver stopped at its deadline")
        self.finished.set()
        self._published.set()

    def _all_done(self) -> bool:
        return (
            not self._planned
            and not self._followups
            and len(self._answered) == len(self.record.commands)
        )

    def _next_batch(self, size: int) -> list[Command]:
        batch: list[Command] = []
        while len(batch) < size and (self._followups or self._planned):
            source = self._followups if self._followups else self._planned
            command = source.popleft()
            batch.append(command)
            first_publish = command.message_id not in self.record.commands
            self.record.commands.setdefault(command.message_id, command)
            if first_publish and self._duplicated(command, self.plan.twin_every, 5):
                batch.append(command)  # a retry in the same breath: same batch, likely
        return batch

    async def _publish_until_accepted(self, batch: list[Command]) -> None:
        assert self._redis is not None
        while True:
            entries = [(command, self._entry(command)) for command in batch]
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for command, fields in entries:
                        pipe.xadd(command.stream, fields)
                    await pipe.execute()
                return
            except (RedisError, OSError) as error:
                # Some of these may have landed: the checker reads the streams.
                self.record.failed_publishes += 1
                logger.info("publish failed (%s); publishing again", error)
                await asyncio.sleep(PUBLISH_RETRY_S)

    def _entry(self, command: Command) -> dict[FieldT, EncodableT]:
        correlation_id = uuid4().hex
        self.record.requests[correlation_id] = Request(
            correlation_id, command.message_id
        )
        fields = plain_entry(
            command.body,
            reply_to=self.record.reply_channel,
            correlation_id=correlation_id,
            message_id=command.message_id,
        )
        if command.poison_kind in RAW_POISON:
            raw = RAW_POISON[command.poison_kind]
            if raw is None:
                del fields[DATA_FIELD]
                fields["payload"] = b'{"name": "misplaced"}'
            else:
                fields[DATA_FIELD] = raw
        return fields

    def _duplicated(self, command: Command, every: int, offset: int) -> bool:
        return command.kind != "poison" and _every(command.sequence, every, offset)

    # Listening.

    async def _listen(self, pubsub: PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=0.5
                )
            except (RedisError, OSError) as error:
                # redis-py reconnects and subscribes again on the next read.
                logger.info("reply subscription lost (%s); reconnecting", error)
                await asyncio.sleep(0.05)
                continue
            if message is not None and message["type"] == "message":
                self._on_reply(message["data"])

    def _on_reply(self, raw: bytes) -> None:
        try:
            body = orjson.loads(raw)
            reply = Reply(str(body["correlation_id"]), raw, body)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.record.unparsable_replies.append(raw)
            return
        self.record.replies.append(reply)
        request = self.record.requests.get(reply.correlation_id)
        if request is None or request.message_id in self._answered:
            return
        self._answered.add(request.message_id)
        self._follow_up(self.record.commands[request.message_id], reply)

    def _follow_up(self, command: Command, reply: Reply) -> None:
        plan = self.plan
        if self._duplicated(command, plan.late_duplicate_every, 7):
            self._followups.append(command)
        if command.kind != "create" or reply.body.get("ok") is not True:
            return
        task_id = str(reply.body["result"]["id"])
        if _every(command.sequence, plan.delete_every, 0):
            self._followups.append(_delete(next(self._sequence), task_id))
        if _every(command.sequence, plan.double_delete_every, 0):
            # A second delete of the same task under its own message id: not_found.
            self._followups.append(_delete(next(self._sequence), task_id))


def _client(url: str) -> Redis:
    return Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=2.0)


def _every(sequence: int, every: int, offset: int) -> bool:
    return every > 0 and sequence % every == offset % every


def _spread(count: int, over: int) -> list[int]:
    """`count` indexes spread evenly over `range(over)`."""
    return [int((position + 0.5) * over / count) for position in range(count)]


def _create(sequence: int, index: int) -> Command:
    body = {
        "name": f"summarise-support-ticket-{index:05d}-{uuid4().hex[:6]}",
        "description": "fault harness",
        "models": MODELS,
    }
    return Command(uuid4().hex, CREATE_STREAM, "create", body, sequence)


def _delete(sequence: int, task_id: str) -> Command:
    return Command(
        uuid4().hex,
        DELETE_STREAM,
        "delete",
        {"id": task_id},
        sequence,
        target_task_id=task_id,
    )


def _poison(sequence: int, position: int) -> Command:
    kind, stream = POISON_KINDS[position % len(POISON_KINDS)]
    name = f"poisoned-task-{uuid4().hex[:8]}"
    bodies: dict[str, dict[str, Any]] = {
        "models-not-a-list": {"name": name, "models": MODELS[0]},
        "unknown-field": {"name": name, "models": MODELS, "owner": "nobody"},
        "bad-model-uri": {"name": name, "models": ["not a uri"]},
        "missing-name": {"models": MODELS},
        "id-not-a-uuid": {"id": "task-42"},
        "nil-id": {"id": str(UUID(int=0))},
    }
    body = bodies.get(kind, {})
    return Command(uuid4().hex, stream, "poison", body, sequence, poison_kind=kind)
