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
from worker.repository.audit import ChainStart, chain_hash
from worker.repository.unit_of_work import UnitOfWork

STREAM_PAGE = 1000
SHOWN_MISSING = 20


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


async def verify_stream(uow: UnitOfWork, redis: Redis, events_maxlen: int) -> Verdict:
    """Compare `task.events` with the log: same payload per seq, none missing.

    The stream is capped near `events_maxlen` entries, and trimming keeps at least
    that many, so every one of the last `events_maxlen` relayed events must be on
    it; older ones may have been trimmed.
    """
    # Before reading the stream: an event relayed while it is read is then not
    # yet required, rather than required and not seen.
    start = await uow.audit.chain_start()
    required = await _required_on_stream(uow, start, events_maxlen)

    verdict = Verdict()
    seen: set[int] = set()
    async for entry_id, data in _stream_entries(redis):
        verdict.checked += 1
        seq = _seq_of(data)
        if seq is None:
            verdict.findings.append(f"stream entry {entry_id} holds no audited event")
            continue
        if seq < start.first_seq:
            # Its event outlived the log's retention; the stream may still hold it.
            continue
        logged = await uow.audit.payload_of(seq)
        if logged is None:
            verdict.findings.append(f"stream entry {entry_id}: seq {seq} is not logged")
        elif logged != data:
            verdict.findings.append(f"stream entry {entry_id}: seq {seq} differs")
        seen.add(seq)

    verdict.findings.extend(_missing(required, seen))
    return verdict


async def _required_on_stream(
    uow: UnitOfWork, start: ChainStart, events_maxlen: int
) -> range:
    """The seqs the stream must hold: the last relayed ones, up to its cap."""
    last_relayed = start.last_seq
    # Events still in the outbox have not been relayed yet: not missing.
    waiting = await uow.outbox.oldest(1)
    if waiting:
        first_waiting = await uow.audit.seq_of(waiting[0].event_id)
        if first_waiting is not None:
            last_relayed = first_waiting - 1
    first = max(start.first_seq, last_relayed - events_maxlen + 1)
    return range(first, last_relayed + 1)


def _missing(required: range, seen: set[int]) -> list[str]:
    missing = [seq for seq in required if seq not in seen]
    findings = [
        f"seq {seq} is logged but not on stream {EVENTS_STREAM}"
        for seq in missing[:SHOWN_MISSING]
    ]
    if len(missing) > SHOWN_MISSING:
        findings.append(
            f"{len(missing) - SHOWN_MISSING} more logged events are not on stream "
            f"{EVENTS_STREAM} (seq {required.start} to {required.stop - 1} must be)"
        )
    return findings


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
