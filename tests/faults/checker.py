"""What the worker left behind, and whether it kept its guarantees.

`Observer` reads the command, event and dead-letter streams, the group's pending
entries and the database. `check` holds that against what the load driver sent and
heard, and lists every violated invariant with evidence: entry ids, message ids and
counts. The streams are the ground truth of what was requested: a publish that failed
half-way may or may not have landed, and only the landed entries are owed a reply.
"""

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
from redis.asyncio import Redis
from sqlalchemy import text

from contracts.streams import (
    COMMAND_STREAMS,
    CORRELATION_ID_FIELD,
    CREATE_STREAM,
    DATA_FIELD,
    DEAD_LETTER_PREFIX,
    DEAD_LETTER_STREAM,
    DELETE_STREAM,
    EVENTS_STREAM,
    MESSAGE_ID_FIELD,
    REPLY_TO_FIELD,
)
from tests.faults.load import LoadRecord, Reply
from worker.audit.reconcile import reconcile
from worker.audit.verify import verify_chain, verify_stream
from worker.repository.database import create_engine, create_session_factory
from worker.repository.unit_of_work import UnitOfWork
from worker.settings import WorkerSettings

GROUP = "tasks-worker"
# The workers run with the default stream cap, far above any scenario's events.
EVENTS_MAXLEN = WorkerSettings().events_maxlen
POISON_CODES = {"malformed", "validation_error"}
EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class Entry:
    stream: str
    entry_id: str
    fields: Mapping[str, bytes]

    def text(self, name: str) -> str:
        return self.fields.get(name, b"").decode(errors="replace")


@dataclass(slots=True)
class Observed:
    commands: list[Entry]
    events: list[Entry]
    dead_letters: list[Entry]
    pending: dict[str, int]
    pending_examples: dict[str, list[str]]
    lag: dict[str, int | None]
    tasks: dict[str, str]
    processed: set[tuple[str, str]]
    outbox: int
    #: What `tasks audit verify` and `reconcile` found, and how many events they read.
    audit_findings: list[str]
    audited: int


class Observer:
    """Reads Redis and the database, for the drain wait and for the final check."""

    def __init__(self, redis_url: str, database_url: str) -> None:
        self._redis = Redis.from_url(redis_url, socket_timeout=5.0)
        self._engine = create_engine(database_url)

    async def aclose(self) -> None:
        await self._redis.aclose()
        await self._engine.dispose()

    async def pending_of(self, consumer: str) -> dict[str, list[str]]:
        """Entry ids pending at one consumer, per command stream."""
        pending: dict[str, list[str]] = {}
        for stream in COMMAND_STREAMS:
            rows: Any = await self._redis.xpending_range(
                stream, GROUP, min="-", max="+", count=10_000, consumername=consumer
            )
            pending[stream] = [_text(row["message_id"]) for row in rows]
        return pending

    async def drained(self) -> bool:
        """Nothing pending or undelivered in the group, and the outbox empty."""
        pending, _ = await self._pending()
        lag = await self._lag()
        if any(pending.values()) or any(lag.values()):
            return False
        return await self._outbox_size() == 0

    async def wait_drained(self, timeout_s: float, settle_s: float) -> bool:
        """Wait for `drained`, then `settle_s` more and ask again (late claims)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await self._drained_or_unreachable():
                await asyncio.sleep(settle_s)
                if await self._drained_or_unreachable():
                    return True
            await asyncio.sleep(0.2)
        return False

    async def observe(self) -> Observed:
        pending, examples = await self._pending()
        async with self._engine.connect() as connection:
            tasks = {
                _uuid(row.id): row.name
                for row in await connection.execute(text("SELECT id, name FROM tasks"))
            }
            processed = {
                (row.stream, row.message_id)
                for row in await connection.execute(
                    text("SELECT stream, message_id FROM processed_commands")
                )
            }
        return Observed(
            commands=[
                entry
                for stream in (CREATE_STREAM, DELETE_STREAM)
                for entry in await self._entries(stream)
            ],
            events=await self._entries(EVENTS_STREAM),
            dead_letters=await self._entries(DEAD_LETTER_STREAM),
            pending=pending,
            pending_examples=examples,
            lag=await self._lag(),
            tasks=tasks,
            processed=processed,
            outbox=await self._outbox_size(),
            **await self._audit(),
        )

    async def _audit(self) -> dict[str, Any]:
        async with UnitOfWork(create_session_factory(self._engine)) as uow:
            chain = await verify_chain(uow)
            stream = await verify_stream(uow, self._redis, EVENTS_MAXLEN)
            replayed = await reconcile(uow)
        findings = [
            f"{check}: {finding}"
            for check, verdict in (
                ("verify chain", chain),
                ("verify stream", stream),
                ("reconcile", replayed),
            )
            for finding in verdict.findings
        ]
        return {"audit_findings": findings, "audited": chain.checked}

    async def _drained_or_unreachable(self) -> bool:
        try:
            return await self.drained()
        except Exception:
            return False

    async def _entries(self, stream: str) -> list[Entry]:
        rows: Any = await self._redis.xrange(stream, "-", "+")
        return [
            Entry(stream, _text(entry_id), {_text(k): v for k, v in fields.items()})
            for entry_id, fields in rows
        ]

    async def _pending(self) -> tuple[dict[str, int], dict[str, list[str]]]:
        counts: dict[str, int] = {}
        examples: dict[str, list[str]] = {}
        for stream in COMMAND_STREAMS:
            summary: Any = await self._redis.xpending(stream, GROUP)
            counts[stream] = int(summary["pending"])
            rows: Any = await self._redis.xpending_range(
                stream, GROUP, min="-", max="+", count=EXAMPLES
            )
            examples[stream] = [
                f"{_text(row['message_id'])}@{_text(row['consumer'])}"
                f"(delivered {row['times_delivered']}x)"
                for row in rows
            ]
        return counts, examples

    async def _lag(self) -> dict[str, int | None]:
        lag: dict[str, int | None] = {}
        for stream in COMMAND_STREAMS:
            groups: Any = await self._redis.xinfo_groups(stream)
            ours = [group for group in groups if _text(group["name"]) == GROUP]
            lag[stream] = ours[0].get("lag") if ours else None
        return lag

    async def _outbox_size(self) -> int:
        async with self._engine.connect() as connection:
            size = await connection.scalar(text("SELECT count(*) FROM outbox"))
        return int(size or 0)


@dataclass(frozen=True, slots=True)
class Recovered:
    """What the workers' logs say they took over: by claim, or as their own."""

    claimed: int
    finished_own: int


@dataclass(slots=True)
class Verdict:
    figures: str
    violations: list[str] = field(default_factory=list)

    def explain(self) -> str:
        return "\n".join([self.figures, *(f"- {line}" for line in self.violations)])


def check(
    scenario: str, record: LoadRecord, observed: Observed, recovered: Recovered
) -> Verdict:
    """Every invariant of the worker, held against one run."""
    run = _Run(record, observed)
    violations = [
        *run.sending_problems(),
        *run.reply_problems(),
        *run.outcome_problems(),
        *run.dead_letter_problems(),
        *run.applied_problems(),
        *run.event_problems(),
        *run.task_row_problems(),
        *run.drain_problems(),
        *observed.audit_findings,
    ]
    return Verdict(run.figures(scenario, recovered), violations)


class _Run:
    """One run's entries, replies and events, indexed for the checks."""

    def __init__(self, record: LoadRecord, observed: Observed) -> None:
        self.record = record
        self.observed = observed
        channel = record.reply_channel
        self.landed = {
            entry.text(CORRELATION_ID_FIELD): entry
            for entry in observed.commands
            if entry.text(REPLY_TO_FIELD) == channel
        }
        self.landed_by_message: dict[str, list[Entry]] = defaultdict(list)
        for entry in self.landed.values():
            self.landed_by_message[entry.text(MESSAGE_ID_FIELD)].append(entry)
        self.replies: dict[str, list[Reply]] = defaultdict(list)
        for reply in record.replies:
            self.replies[reply.correlation_id].append(reply)
        self.events = _distinct_events(observed.events)

    def kind_of(self, message_id: str) -> str:
        command = self.record.commands.get(message_id)
        return "stranger" if command is None else command.kind

    def first_reply(self, message_id: str) -> Reply | None:
        for entry in self.landed_by_message[message_id]:
            replies = self.replies.get(entry.text(CORRELATION_ID_FIELD))
            if replies:
                return replies[0]
        return None

    def accepted(self) -> Iterable[str]:
        """Message ids of the driver's commands that landed and are no poison."""
        return (
            mid
            for mid in self.landed_by_message
            if self.kind_of(mid) in {"create", "delete"}
        )

    # The checks.

    def sending_problems(self) -> list[str]:
        problems = []
        if self.record.timed_out:
            problems.append("the load driver hit its deadline before all was answered")
        strangers = [
            entry.entry_id
            for entry in self.landed.values()
            if entry.text(MESSAGE_ID_FIELD) not in self.record.commands
        ]
        if strangers:
            problems.append(f"entries the driver never sent: {_some(strangers)}")
        never = set(self.record.commands) - set(self.landed_by_message)
        if never:
            problems.append(f"commands that never landed: {_some(never)}")
        return problems

    def reply_problems(self) -> list[str]:
        problems = []
        missing, doubled = [], []
        for correlation_id, entry in self.landed.items():
            count = len(self.replies.get(correlation_id, []))
            evidence = f"{entry.stream} {entry.entry_id} corr={correlation_id}"
            if count == 0:
                missing.append(evidence)
            elif count > 1:
                doubled.append(f"{evidence} x{count}")
        if missing:
            problems.append(f"{len(missing)} requests got no reply: {_some(missing)}")
        if doubled:
            problems.append(f"{len(doubled)} requests got >1 reply: {_some(doubled)}")
        unasked = set(self.replies) - set(self.landed)
        if unasked:
            problems.append(f"replies to no landed request: {_some(unasked)}")
        if self.record.unparsable_replies:
            problems.append(
                f"unparsable replies: {_some(self.record.unparsable_replies)}"
            )
        return problems

    def outcome_problems(self) -> list[str]:
        differing: list[str] = []
        unexpected: dict[str, list[str]] = defaultdict(list)
        for message_id, entries in self.landed_by_message.items():
            bodies = [
                reply.without_correlation()
                for entry in entries
                for reply in self.replies.get(entry.text(CORRELATION_ID_FIELD), [])
            ]
            if any(body != bodies[0] for body in bodies):
                outcomes = ", ".join(_outcome(body) for body in bodies)
                differing.append(f"{message_id} ({outcomes})")
            if self.kind_of(message_id) == "stranger":
                continue  # reported by sending_problems
            if bodies and not self._expected_outcome(message_id, bodies[0]):
                what = f"{self.kind_of(message_id)} answered {_outcome(bodies[0])}"
                unexpected[what].append(message_id)
        problems = [
            f"{len(ids)} x {what}: {_some(ids)}" for what, ids in unexpected.items()
        ]
        if differing:
            problems.append(
                f"{len(differing)} commands whose copies got different replies: "
                f"{_some(differing)}"
            )
        problems.extend(self._delete_winner_problems())
        return problems

    def dead_letter_problems(self) -> list[str]:
        problems = []
        dead = Counter(
            entry.text(CORRELATION_ID_FIELD) for entry in self.observed.dead_letters
        )
        poison = {
            correlation_id
            for correlation_id, entry in self.landed.items()
            if self.kind_of(entry.text(MESSAGE_ID_FIELD)) == "poison"
        }
        if set(dead) - poison:
            wrongly = [
                f"{entry.entry_id} corr={entry.text(CORRELATION_ID_FIELD)} "
                f"code={entry.text(DEAD_LETTER_PREFIX + 'code')} "
                f"reason={entry.text(DEAD_LETTER_PREFIX + 'reason')!r}"
                for entry in self.observed.dead_letters
                if entry.text(CORRELATION_ID_FIELD) not in poison
            ]
            problems.append(
                f"{len(wrongly)} dead letters are no poison: {_some(wrongly)}"
            )
        if poison - set(dead):
            problems.append(f"poison not dead-lettered: {_some(poison - set(dead))}")
        twice = [correlation_id for correlation_id, n in dead.items() if n > 1]
        if twice:
            problems.append(f"poison dead-lettered more than once: {_some(twice)}")
        problems.extend(self._dead_letter_copy_problems())
        return problems

    def applied_problems(self) -> list[str]:
        problems = []
        accepted = {(self.record.commands[mid].stream, mid) for mid in self.accepted()}
        # Refused creates and deletes are remembered too, so that each is audited
        # once; they count as processed without being applied.
        audited = {
            (self.record.commands[mid].stream, mid)
            for mid in self.landed_by_message
            if self.kind_of(mid) == "poison"
        }
        processed = self.observed.processed - audited
        if accepted - processed:
            problems.append(f"accepted, never applied: {_some(accepted - processed)}")
        if processed - accepted:
            problems.append(
                f"recorded but no accepted command: {_some(processed - accepted)}"
            )
        return problems

    def event_problems(self) -> list[str]:
        problems = list(self.events.problems)
        by_cause = defaultdict(list)
        for event in self.events.distinct:
            by_cause[str(event["causation_id"])].append(event)
        mismatched = [
            mismatch
            for message_id in self.accepted()
            if (mismatch := self._events_of(message_id, by_cause.pop(message_id, [])))
        ]
        if mismatched:
            problems.append(
                f"{len(mismatched)} commands whose events do not match their first "
                f"reply: {_some(mismatched)}"
            )
        if by_cause:
            problems.append(f"events caused by no accepted command: {_some(by_cause)}")
        problems.extend(self._order_problems())
        return problems

    def task_row_problems(self) -> list[str]:
        created, deleted = self._created_and_deleted()
        expected = {
            task_id: name for task_id, name in created.items() if task_id not in deleted
        }
        rows = self.observed.tasks
        problems = []
        if set(expected) - set(rows):
            problems.append(
                f"tasks missing from the table: {_some(set(expected) - set(rows))}"
            )
        if set(rows) - set(expected):
            problems.append(
                f"task rows that should not exist: {_some(set(rows) - set(expected))}"
            )
        renamed = [
            task_id
            for task_id in set(rows) & set(expected)
            if rows[task_id] != expected[task_id]
        ]
        if renamed:
            problems.append(f"task rows with another name: {_some(renamed)}")
        return problems

    def drain_problems(self) -> list[str]:
        observed = self.observed
        problems = [
            f"{count} entries still pending on {stream}: "
            f"{', '.join(observed.pending_examples[stream])}"
            for stream, count in observed.pending.items()
            if count
        ]
        problems.extend(
            f"{lag} entries never delivered on {stream}"
            for stream, lag in observed.lag.items()
            if lag
        )
        if observed.outbox:
            problems.append(f"{observed.outbox} events still in the outbox")
        return problems

    def figures(self, scenario: str, recovered: Recovered) -> str:
        accepted = list(self.accepted())
        accepted_entries = sum(len(self.landed_by_message[mid]) for mid in accepted)
        events = self.observed.events
        return (
            f"figures scenario={scenario} sent={len(self.landed)} "
            f"commands={len(self.landed_by_message)} "
            f"applied={len(self.observed.processed)} "
            f"duplicates_absorbed={accepted_entries - len(accepted)} "
            f"dead_lettered={len(self.observed.dead_letters)} "
            f"claimed={recovered.claimed} own_pending={recovered.finished_own} "
            f"replies={len(self.record.replies)} "
            f"events={len(self.events.distinct)} "
            f"rejections_audited={self.events.rejections} "
            f"log_verified={self.observed.audited} "
            f"event_copies={self.events.copies(len(events))} "
            f"failed_publishes={self.record.failed_publishes}"
        )

    # Helpers of the checks.

    def _expected_outcome(self, message_id: str, body: Mapping[str, Any]) -> bool:
        command = self.record.commands[message_id]
        error_code = (body.get("error") or {}).get("code")
        if command.kind == "create":
            return (
                body.get("ok") is True
                and body["result"]["name"] == command.body["name"]
            )
        if command.kind == "delete":
            if body.get("ok") is True:
                return str(body["result"]["id"]) == command.target_task_id
            return error_code == "not_found"
        return body.get("ok") is False and error_code in POISON_CODES

    def _delete_winner_problems(self) -> list[str]:
        created, _ = self._created_and_deleted()
        wins: Counter[str] = Counter()
        for command in self.record.commands_of("delete"):
            reply = self.first_reply(command.message_id)
            if reply is not None and reply.body.get("ok") is True:
                wins[command.target_task_id] += 1
        targets = {
            command.target_task_id for command in self.record.commands_of("delete")
        }
        wrong = [
            f"{task_id} deleted {wins[task_id]}x"
            for task_id in targets
            if wins[task_id] != (1 if task_id in created else 0)
        ]
        return (
            [f"deletes that did not win exactly once: {_some(wrong)}"] if wrong else []
        )

    def _dead_letter_copy_problems(self) -> list[str]:
        altered = []
        for dead in self.observed.dead_letters:
            original = self.landed.get(dead.text(CORRELATION_ID_FIELD))
            if original is None:
                continue
            if dead.text(DEAD_LETTER_PREFIX + "stream") != original.stream or (
                dead.fields.get(DATA_FIELD) != original.fields.get(DATA_FIELD)
            ):
                altered.append(dead.entry_id)
        return (
            [f"dead letters that altered the entry: {_some(altered)}"]
            if altered
            else []
        )

    def _events_of(
        self, message_id: str, events: Sequence[Mapping[str, Any]]
    ) -> str | None:
        command = self.record.commands[message_id]
        reply = self.first_reply(message_id)
        if reply is None:
            return None  # reported as a missing reply
        expected: list[tuple[str, str]] = []  # a refused command changes nothing
        if reply.body.get("ok") is True:
            event_type = "task.created" if command.kind == "create" else "task.deleted"
            expected = [(event_type, str(reply.body["result"]["id"]))]
        actual = [(str(event["type"]), str(event["task"]["id"])) for event in events]
        if actual == expected:
            return None
        return f"{command.kind} {message_id}: events {actual}, expected {expected}"

    def _order_problems(self) -> list[str]:
        sequences: dict[str, list[str]] = defaultdict(list)
        for event in self.events.distinct:
            sequences[str(event["task"]["id"])].append(str(event["type"]))
        allowed = (["task.created"], ["task.created", "task.deleted"])
        wrong = [
            f"{task_id}: {types}"
            for task_id, types in sequences.items()
            if types not in allowed
        ]
        return [f"tasks whose events are out of order: {_some(wrong)}"] if wrong else []

    def _created_and_deleted(self) -> tuple[dict[str, str], set[str]]:
        created: dict[str, str] = {}
        deleted: set[str] = set()
        for message_id in self.accepted():
            reply = self.first_reply(message_id)
            if reply is None or reply.body.get("ok") is not True:
                continue
            command = self.record.commands[message_id]
            task_id = str(reply.body["result"]["id"])
            if command.kind == "create":
                created[task_id] = reply.body["result"]["name"]
            else:
                deleted.add(task_id)
        return created, deleted


CHANGE_TYPES = {"task.created", "task.deleted"}


@dataclass(slots=True)
class _Events:
    """Events by first appearance; a re-sent copy keeps its id and its content."""

    distinct: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: Audited refusals (`task.create_rejected`, ...): not changes, checked apart.
    rejections: int = 0

    def copies(self, entries: int) -> int:
        """How many stream entries repeated an event already seen."""
        return entries - len(self.distinct) - self.rejections


def _distinct_events(entries: Sequence[Entry]) -> _Events:
    events = _Events()
    first: dict[str, dict[str, Any]] = {}
    altered = []
    for entry in entries:
        event = orjson.loads(entry.fields[DATA_FIELD])
        event_id = str(event["event_id"])
        if event_id not in first:
            first[event_id] = event
            if event["type"] in CHANGE_TYPES:
                events.distinct.append(event)
            else:
                events.rejections += 1
        elif first[event_id] != event:
            altered.append(f"{event_id} at {entry.entry_id}")
    if altered:
        events.problems.append(f"event ids re-used for other content: {_some(altered)}")
    return events


def _outcome(body: Mapping[str, Any]) -> str:
    if body.get("ok") is True:
        return "ok"
    return str((body.get("error") or {}).get("code", "?"))


def _some(items: Iterable[Any]) -> str:
    listed = sorted(str(item) for item in items)
    more = f" (+{len(listed) - EXAMPLES} more)" if len(listed) > EXAMPLES else ""
    return ", ".join(listed[:EXAMPLES]) + more


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _uuid(value: Any) -> str:
    return str(value if isinstance(value, UUID) else UUID(str(value)))
