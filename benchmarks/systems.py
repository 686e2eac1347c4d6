"""One repetition of one system: start it as a process, run its workloads, stop it."""

import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from faststream.redis import BinaryMessageFormatV1
from redis.asyncio import Redis
from sqlalchemy import Table

from benchmarks import floor, peer
from benchmarks.clients import BareClient, PeerClient
from benchmarks.databases import (
    PEER_TASKS,
    SEED_MODELS,
    WORKER_TASKS,
    count_rows,
    create_peer_table,
    fresh_sqlite_url,
    migrate,
    recreate_postgres,
    seed_worker_tasks,
)
from benchmarks.figures import (
    CPU_PER_CREATE,
    CPU_PER_GET,
    CREATES,
    END,
    FLOOR,
    GET_IN_FLIGHT,
    GET_P50,
    GET_P99,
    LIST_LARGE,
    LIST_SMALL,
    PEER,
    RSS_GROWTH,
    RSS_PEAK,
    WARM,
    WORKER_POSTGRES,
    WORKER_SQLITE,
)
from benchmarks.loads import POSTGRES_URL, REDIS_URL, Loads
from benchmarks.processes import ResourceWatch, ServerProcess, child_environment
from benchmarks.progress import Progress
from benchmarks.workloads import (
    Fields,
    Request,
    create_throughput,
    latencies_ms,
    percentile,
    throughput_in_flight,
    warm_up,
)
from contracts import CREATE_STREAM, QUERY_STREAM
from contracts.client import TaskClient, plain_entry
from contracts.streams import DEAD_LETTER_PREFIX, DEAD_LETTER_STREAM

READY_TIMEOUT_S = 60.0
WORKER_GROUP = "bench-worker"
# Nobody listens here: create replies cost the system a PUBLISH, not the benchmark.
CREATE_REPLY_CHANNEL = "bench.create-replies"
# Worker settings a caller may set to compare configurations; passed on as they are.
WORKER_KNOBS = ("TASKS_BATCH_SIZE", "TASKS_BATCH_WAIT_MS")

Figures = dict[str, float]
SendQuery = Callable[[str, dict[str, str]], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Session:
    """What every system's repetition shares."""

    loads: Loads
    progress: Progress
    workdir: Path
    repetition: int


def log_path(session: Session, system: str) -> Path:
    """Where the output of `system`'s process in this repetition goes."""
    return session.workdir / f"{system}-{session.repetition}.log"


@dataclass
class Measured:
    figures: Figures
    checkpoints_mb: dict[str, float]


async def measure_floor(session: Session) -> Measured:
    process = ServerProcess(
        ["benchmarks.floor", "--redis-url", REDIS_URL],
        child_environment({}),
        log_path(session, FLOOR),
        floor.READY_LINE,
    )
    async with _running(process) as watch:
        ids = [uuid4() for _ in range(session.loads.small_store)]
        async with BareClient(REDIS_URL) as client:
            get = _cycling_get(client.request, ids)
            figures = await _get_phases(session, "floor", get, watch)
        entries = _plain_creates(session.loads.creates)
        figures |= await _creates(session, "floor", floor.GROUP, entries, watch)
    return _finish(figures, watch)


async def measure_peer(session: Session) -> Measured:
    url = fresh_sqlite_url(session.workdir, "peer")
    ids = await create_peer_table(url, session.loads.small_store)
    process = ServerProcess(
        ["benchmarks.peer", "--redis-url", REDIS_URL, "--database-url", url],
        child_environment({}),
        log_path(session, PEER),
        peer.READY_LINE,
    )
    async with _running(process) as watch:
        async with PeerClient(REDIS_URL) as client:
            get = _cycling_get(client.request, ids)
            figures = await _get_phases(session, "peer", get, watch)
        entries = await _faststream_creates(session.loads.peer_creates)
        figures |= await _creates(session, "peer", peer.GROUP, entries, watch)

    await _expect_rows(url, PEER_TASKS, len(ids) + session.loads.peer_creates)
    return _finish(figures, watch)


async def measure_worker(session: Session, system: str) -> Measured:
    loads = session.loads
    url = await _fresh_worker_database(session, system)
    ids = await seed_worker_tasks(url, loads.small_store)
    process = ServerProcess(
        ["worker.cli", "run", "--no-migrate"],
        _worker_environment(session, system, url),
        log_path(session, system),
        "worker ready",
    )
    async with _running(process) as watch, TaskClient.from_url(REDIS_URL) as client:
        figures = {
            LIST_SMALL: await _list_p50(session, system, client, loads.small_store)
        }
        get = _cycling_get(lambda _, body: client.get(body["id"]), ids)
        figures |= await _get_phases(session, system, get, watch)
        entries = _plain_creates(loads.creates)
        figures |= await _creates(session, system, WORKER_GROUP, entries, watch)
        await _expect_no_dead_letters()
        await _expect_rows(url, WORKER_TASKS, len(ids) + loads.creates)

        session.progress.phase(f"{system}: seeding up to {loads.large_store:,} tasks")
        await seed_worker_tasks(
            url, loads.large_store - len(ids) - loads.creates, first=len(ids)
        )
        figures[LIST_LARGE] = await _list_p50(
            session, system, client, loads.large_store
        )
        process.check_alive()
    return _finish(figures, watch)


@asynccontextmanager
async def _running(process: ServerProcess) -> AsyncIterator[ResourceWatch]:
    """The started process, sampled until the block ends, then stopped."""
    await flush_redis()
    await process.start(READY_TIMEOUT_S)
    watch = ResourceWatch(process.pid)
    try:
        watch.start()
        yield watch
        process.check_alive()
        watch.checkpoint(END)
    finally:
        await watch.finish()
        await process.stop()
        await flush_redis()


async def flush_redis() -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


def _finish(figures: Figures, watch: ResourceWatch) -> Measured:
    checkpoints_mb = {name: kb / 1024 for name, kb in watch.checkpoints_kb.items()}
    figures[RSS_PEAK] = watch.peak_kb / 1024
    if WARM in checkpoints_mb and END in checkpoints_mb:
        figures[RSS_GROWTH] = checkpoints_mb[END] - checkpoints_mb[WARM]
    return Measured(figures, checkpoints_mb)


def _cycling_get(send: SendQuery, ids: Sequence[UUID]) -> Request:
    next_id = itertools.cycle([str(task_id) for task_id in ids]).__next__

    def get() -> Awaitable[object]:
        return send(QUERY_STREAM, {"kind": "get", "id": next_id()})

    return get


async def _get_phases(
    session: Session, system: str, get: Request, watch: ResourceWatch
) -> Figures:
    loads, progress = session.loads, session.progress
    progress.phase(f"{system}: warm-up")
    await warm_up(get, loads.warmup_requests, loads.in_flight)
    watch.checkpoint(WARM)

    progress.phase(f"{system}: get one at a time")
    timings = await latencies_ms(get, loads.get_requests, progress)

    progress.phase(f"{system}: get, {loads.in_flight} in flight")
    cpu_before_s = watch.cpu_seconds()
    rate = await throughput_in_flight(
        get, loads.in_flight_requests, loads.in_flight, progress
    )
    cpu_s = watch.cpu_seconds() - cpu_before_s
    return {
        GET_P50: percentile(timings, 0.50),
        GET_P99: percentile(timings, 0.99),
        GET_IN_FLIGHT: rate,
        CPU_PER_GET: cpu_s / loads.in_flight_requests * 1e6,
    }


async def _list_p50(
    session: Session, system: str, client: TaskClient, stored: int
) -> float:
    page = await client.list(skip=0, limit=100)
    if page.total != stored or len(page.items) != min(100, stored):
        raise RuntimeError(f"{system}: list saw {page.total} tasks, not {stored}")
    session.progress.phase(f"{system}: list with {stored:,} tasks stored")
    timings = await latencies_ms(
        lambda: client.list(skip=0, limit=100),
        session.loads.list_requests,
        session.progress,
    )
    return percentile(timings, 0.50)


async def _creates(
    session: Session,
    system: str,
    group: str,
    entries: Sequence[Fields],
    watch: ResourceWatch,
) -> Figures:
    session.progress.phase(f"{system}: {len(entries):,} creates")
    redis = Redis.from_url(REDIS_URL)
    cpu_before_s = watch.cpu_seconds()
    try:
        rate = await create_throughput(
            redis, CREATE_STREAM, group, entries, session.progress
        )
    finally:
        await redis.aclose()
    cpu_s = watch.cpu_seconds() - cpu_before_s
    return {CREATES: rate, CPU_PER_CREATE: cpu_s / len(entries) * 1e6}


def _create_body(number: int) -> dict[str, object]:
    return {"name": f"created-{number:07d}", "description": "", "models": SEED_MODELS}


def _plain_creates(count: int) -> list[Fields]:
    entries = []
    for number in range(count):
        correlation_id = uuid4().hex
        entries.append(
            plain_entry(
                _create_body(number),
                reply_to=CREATE_REPLY_CHANNEL,
                correlation_id=correlation_id,
                message_id=correlation_id,
            )
        )
    return entries


async def _faststream_creates(count: int) -> list[Fields]:
    """Entries as `broker.publish` writes them: one `__data__` envelope each."""
    entries: list[Fields] = []
    for number in range(count):
        envelope = await BinaryMessageFormatV1.encode(
            message=_create_body(number),
            reply_to=CREATE_REPLY_CHANNEL,
            headers=None,
            correlation_id=uuid4().hex,
        )
        entries.append({"__data__": envelope})
    return entries


async def _expect_no_dead_letters() -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        dead: Any = await redis.xrange(DEAD_LETTER_STREAM, count=1)
        count = await redis.xlen(DEAD_LETTER_STREAM)
    finally:
        await redis.aclose()
    if dead:
        _, fields = dead[0]
        reason = fields.get(f"{DEAD_LETTER_PREFIX}reason".encode(), b"?").decode()
        raise RuntimeError(f"{count} commands were dead-lettered, the first: {reason}")


async def _expect_rows(url: str, table: Table, expected: int) -> None:
    stored = await count_rows(url, table)
    if stored != expected:
        raise RuntimeError(f"{stored} tasks stored, expected {expected}")


async def _fresh_worker_database(session: Session, system: str) -> str:
    if system == WORKER_SQLITE:
        url = fresh_sqlite_url(session.workdir, "worker")
    elif system == WORKER_POSTGRES:
        url = POSTGRES_URL
        await recreate_postgres(url)
    else:
        raise ValueError(f"not a worker system: {system}")
    await migrate(url, system)
    return url


def _worker_environment(session: Session, system: str, url: str) -> dict[str, str]:
    variables = {
        "TASKS_REDIS_URL": REDIS_URL,
        "TASKS_DATABASE_URL": url,
        "TASKS_DATA_DIR": str(session.workdir / f"data-{system}"),
        "TASKS_EMBEDDED_REDIS": "false",
        "TASKS_GROUP": WORKER_GROUP,
        "TASKS_CONSUMER": f"bench-{system}",
        "TASKS_LOG_LEVEL": "INFO",
    }
    variables |= {knob: os.environ[knob] for knob in WORKER_KNOBS if knob in os.environ}
    return child_environment(variables)
