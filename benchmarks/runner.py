"""A whole run: every system, every repetition, interleaved, then the report."""

import asyncio
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.databases import drop_postgres
from benchmarks.figures import (
    FLOOR,
    PEER,
    SYSTEMS,
    WORKER_POSTGRES,
    WORKER_SQLITE,
    Results,
)
from benchmarks.loads import POSTGRES_URL, REDIS_URL, Loads, describe_loads
from benchmarks.progress import Progress
from benchmarks.systems import (
    WORKER_KNOBS,
    Measured,
    Session,
    flush_redis,
    log_path,
    measure_floor,
    measure_peer,
    measure_worker,
)

Measure = Callable[[Session], Awaitable[Measured]]

MEASURES: dict[str, Measure] = {
    FLOOR: measure_floor,
    PEER: measure_peer,
    WORKER_SQLITE: lambda session: measure_worker(session, WORKER_SQLITE),
    WORKER_POSTGRES: lambda session: measure_worker(session, WORKER_POSTGRES),
}


@dataclass(frozen=True, slots=True)
class Plan:
    loads: Loads
    repetitions: int
    quick: bool

    @property
    def settings(self) -> list[tuple[str, str]]:
        knobs = [f"{knob}={os.environ.get(knob, 'default')}" for knob in WORKER_KNOBS]
        return [
            (
                "loads",
                ("quick: " if self.quick else "full: ") + describe_loads(self.loads),
            ),
            ("repetitions", f"{self.repetitions}, interleaved by system"),
            ("redis", REDIS_URL),
            ("postgresql", POSTGRES_URL),
            ("worker", " ".join(knobs)),
        ]


async def run(plan: Plan, progress: Progress) -> Results:
    """Measure every system `plan.repetitions` times; failures end up in `errors`."""
    results = Results()
    with tempfile.TemporaryDirectory(prefix="tasks-bench-") as folder:
        await flush_redis()
        try:
            async with asyncio.timeout(plan.loads.run_timeout_s):
                await _repeat(plan, progress, Path(folder), results)
        except TimeoutError:
            results.errors.append(
                f"the run exceeded {plan.loads.run_timeout_s:.0f}s and was stopped"
            )
        finally:
            progress.close()
            await flush_redis()
            await drop_postgres(POSTGRES_URL)
    return results


async def _repeat(
    plan: Plan, progress: Progress, folder: Path, results: Results
) -> None:
    for repetition in range(1, plan.repetitions + 1):
        for system in SYSTEMS:
            progress.phase(f"repetition {repetition}/{plan.repetitions}: {system}")
            session = Session(plan.loads, progress, folder, repetition)
            await _measure(system, session, results)


async def _measure(system: str, session: Session, results: Results) -> None:
    try:
        async with asyncio.timeout(session.loads.session_timeout_s):
            measured = await MEASURES[system](session)
    except Exception as error:
        results.errors.append(
            f"repetition {session.repetition}, {system}: "
            f"{type(error).__name__}: {error}{_log_tail(session, system)}"
        )
        return
    results.add(system, measured.figures)
    results.add_checkpoints(system, measured.checkpoints_mb)


def _log_tail(session: Session, system: str, lines: int = 15) -> str:
    """The end of the system's output, which goes away with the run's folder."""
    try:
        output = log_path(session, system).read_text(errors="replace")
    except OSError:
        return ""
    tail = output.splitlines()[-lines:]
    return "".join(f"\n    | {line}" for line in tail)
