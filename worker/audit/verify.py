"""`tasks audit verify`: is the record whole?

The chain is recomputed from the database; then every entry of `task.events` must
match the logged event of its seq, and no logged event may be missing from the
stretch of the stream that holds relayed events.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from contracts import EVENTS_STREAM
from contracts.streams import DATA_FIELD
from worker.repository.audit import chain_hash
from worker.repository.unit_of_work import UnitOfWork

STREAM_PAGE = 1000


@dataclass
class Verdict:
    """What a check read, and its findings, the first broken spot first."""

    checked: int = 0
    findings: list[str] = field(default_factory=list)

    @property
    def whole(self) -> bool:
        return not self.findings


async def verify_chain(uow: UnitOfWork) -> Verdict:
    """Recompute the hash chain over the kept log; stops at the first broken link."""
    verdict = Verdict()
    start = await uow.audit.chain_start()
    expected_seq, prev_hash = start.first_seq, start.prev_hash

    async for seq, payload, stored_hash in uow.audit.stream():
        problem = _link_problem(expected_seq, prev_hash, seq, payload, stored_hash)
        if problem is not None:
            verdict.findings.append(problem)
            return verdict
        prev_hash = stored_hash
        expected_seq += 1
        verdict.checked += 1

    if expected_seq - 1 != start.last_seq:
        verdict.findings.append(
            f"the log ends at seq {expected_seq - 1} but its head records seq "
            f"{start.last_seq}: events were removed from the end"
        )
    return verdict


def _link_problem(
    expected_seq: int, prev_hash: str, seq: int, payload: str, stored_hash: str
) -> str | None:
    if seq != expected_seq:
        return f"seq {expected_seq} is missing: the next event logged is seq {seq}"
    event: dict[str, Any] = orjson.loads(payload)
    if event.get("seq") != seq:
        return f"seq {seq}: its event says seq {event.get('seq')} (moved?)"
    if event.get("prev_hash") != prev_hash:
        return f"seq {seq}: prev_hash does not match seq {seq - 1} (reordered?)"
    computed = chain_hash(prev_hash, event)
    if computed != event.get("hash") or computed != stored_hash:
        return f"seq {seq}: its content does not match its hash (edited)"
    return None


async def verify_stream(uow: UnitOfWork, redis: Redis) -> Verdict:
    """Compare `task.events` with the log: same payload per seq, none missing."""
    verdict = Verdict()
    seen: set[int] = set()
    async for entry_id, data in _stream_entries(redis):
        verdict.checked += 1
        seq = _seq_of(data)
        if seq is None:
            verdict.findings.append(f"stream entry {entry_id} holds no audited event")
            continue
        logged = await uow.audit.payload_of(seq)
        if logged is None:
            verdict.findings.append(f"stream entry {entry_id}: seq {seq} is not logged")
        elif logged != data:
            verdict.findings.append(f"stream entry {entry_id}: seq {seq} differs")
        seen.add(seq)

    verdict.findings.extend(await _missing_from_stream(uow, seen))
    return verdict


async def _missing_from_stream(uow: UnitOfWork, seen: set[int]) -> list[str]:
    # Before the stream's first entry, events were trimmed by its cap; after the
    # last relayed one, they may still wait in the outbox.
    if not seen:
        return []
    waiting = await uow.outbox.oldest(1)
    last_relayed = max(seen)
    if waiting:
        first_waiting = await uow.audit.seq_of(waiting[0].event_id)
        if first_waiting is not None:
            last_relayed = max(last_relayed, first_waiting - 1)
    missing = [seq for seq in range(min(seen), last_relayed + 1) if seq not in seen]
    return [
        f"seq {seq} is logged but not on stream {EVENTS_STREAM}" for seq in missing[:20]
    ]


async def _stream_entries(redis: Redis) -> Any:
    after = "-"
    while True:
        response = cast(
            Sequence[tuple[bytes, dict[bytes, bytes]]],
            await redis.xrange(EVENTS_STREAM, min=after, count=STREAM_PAGE),
        )
        for entry_id, fields in response:
            yield entry_id.decode(), fields.get(DATA_FIELD.encode(), b"").decode()
        if len(response) < STREAM_PAGE:
            return
        after = f"({response[-1][0].decode()}"


def _seq_of(data: str) -> int | None:
    try:
        seq = orjson.loads(data).get("seq")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return seq if isinstance(seq, int) else None
