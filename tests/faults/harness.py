"""One scenario's servers, workers and faults, and the final check.

Blocking steps (starting a process, stopping a server) run in a thread, so that the
load driver keeps publishing and listening in the test's event loop meanwhile.
"""

import asyncio
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

from redis.asyncio import Redis

from contracts.streams import CREATE_STREAM, DELETE_STREAM
from tests.faults.checker import GROUP, Observer, Recovered, Verdict, check
from tests.faults.load import LoadDriver, LoadPlan
from tests.faults.servers import PostgresCluster, RedisServer
from tests.faults.workers import FaultWorker

CLAIM_IDLE_MS = 1000
CLAIM_INTERVAL_S = 0.5
DRAIN_TIMEOUT_S = 45.0
# Longer than a claim period: a late claim or a second reply would show by then.
SETTLE_S = 2.0
KILL_AIM_TIMEOUT_S = 10.0

# Log lines worth showing in a failure: errors, and the last line of a traceback.
_ALARMS = re.compile(r" (ERROR|CRITICAL) |^[a-z_.]*[A-Za-z]+(Error|Exception)\b")


@dataclass
class Rig:
    """The servers of one test, the workers started on them, and how to hurt them."""

    scenario: str
    redis: RedisServer
    database_url: str
    workdir: Path
    postgres: PostgresCluster | None
    report: Callable[[str], None]
    workers: list[FaultWorker] = field(default_factory=list)

    def worker(self, consumer: str) -> FaultWorker:
        made = FaultWorker(consumer, self._worker_env(consumer), self.workdir)
        self.workers.append(made)
        return made

    async def start(self, worker: FaultWorker) -> None:
        await asyncio.to_thread(worker.start)

    def load(self, plan: LoadPlan) -> LoadDriver:
        return LoadDriver(self.redis.url, plan)

    async def kill_in_flight(self, worker: FaultWorker) -> dict[str, list[str]]:
        """SIGKILL the worker at a moment it holds unacknowledged entries.

        The worker is frozen (SIGSTOP) and its pending entries read; if it holds
        none just then, it runs on briefly and is frozen again. Returns the entry
        ids it held, per stream, which only claiming or a restart can finish.
        """
        observer = self._observer()
        deadline = time.monotonic() + KILL_AIM_TIMEOUT_S
        try:
            while True:
                worker.pause()
                held = await observer.pending_of(worker.consumer)
                if any(held.values()) or time.monotonic() > deadline:
                    await asyncio.to_thread(worker.kill)
                    return held
                worker.resume()
                await asyncio.sleep(0.03)
        finally:
            await observer.aclose()

    async def restart_redis(self, driver: LoadDriver, down_s: float) -> None:
        """Stop Redis gracefully, keep it down, start it on the same port and dir.

        Workers are frozen while Redis comes back until the driver's subscription is
        restored: pub/sub keeps no message for a client that has not resubscribed
        yet, and the guarantee covers only replies to a listening client.
        """
        await asyncio.to_thread(self.redis.stop)
        await asyncio.sleep(down_s)
        running = [worker for worker in self.workers if worker.is_running()]
        for worker in running:
            worker.pause()
        try:
            await asyncio.to_thread(self.redis.start)
            await _wait_resubscribed(driver, timeout_s=15.0)
        finally:
            for worker in running:
                worker.resume()

    async def interrupt_postgres(self, down_s: float) -> None:
        """Stop PostgreSQL (fast: sessions are ended), then start it again."""
        assert self.postgres is not None, "this scenario needs PostgreSQL"
        await asyncio.to_thread(self.postgres.stop, "fast")
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.postgres.start)

    async def steal_entries(
        self, driver: LoadDriver, per_round: int, interval_s: float
    ) -> list[str]:
        """Read new entries as a consumer that never acknowledges, while load runs.

        Each stolen entry is redelivered only when a worker claims it.
        """
        thief = Redis.from_url(self.redis.url, socket_timeout=5.0)
        ghost = f"ghost-{uuid4().hex[:6]}"
        stolen: list[str] = []
        try:
            while not driver.finished.is_set():
                response: Any = await thief.xreadgroup(
                    GROUP, ghost, {CREATE_STREAM: ">", DELETE_STREAM: ">"}, per_round
                )
                for _, entries in response or []:
                    stolen.extend(entry_id.decode() for entry_id, _ in entries)
                await asyncio.sleep(interval_s)
        finally:
            await thief.aclose()
        return stolen

    async def drain_and_check(self, driver: LoadDriver) -> Verdict:
        """Wait for the load to finish and drain, then check and print the figures."""
        observer = self._observer()
        try:
            async with asyncio.timeout(driver.plan.deadline_s + 5.0):
                await driver.finished.wait()
            await observer.wait_drained(DRAIN_TIMEOUT_S, SETTLE_S)
            observed = await observer.observe()
        finally:
            await observer.aclose()
        verdict = check(self.scenario, driver.record, observed, self.recovered())
        self.report(verdict.figures)
        if verdict.violations:
            verdict.violations.append(self.log_evidence())
        return verdict

    def recovered(self) -> Recovered:
        return Recovered(
            claimed=sum(worker.claimed_count() for worker in self.workers),
            finished_own=sum(worker.finished_own_count() for worker in self.workers),
        )

    def log_evidence(self) -> str:
        """The alarming lines of every worker log, for a failure message."""
        sections = []
        for worker in self.workers:
            alarms = [
                line[:300]
                for line in worker.logs().splitlines()
                if _ALARMS.search(line)
            ]
            sections.append(
                f"worker {worker.consumer}: {len(alarms)} alarming log lines\n"
                + "\n".join(alarms[:30])
                + f"\n--- last lines ---\n{worker.tail()}"
            )
        return "\n".join(sections)

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.kill()

    def _observer(self) -> Observer:
        return Observer(self.redis.url, self.database_url)

    def _worker_env(self, consumer: str) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("TASKS_")
        }
        env.update(
            TASKS_REDIS_URL=self.redis.url,
            TASKS_DATABASE_URL=self.database_url,
            TASKS_CONSUMER=consumer,
            TASKS_CLAIM_IDLE_MS=str(CLAIM_IDLE_MS),
            TASKS_CLAIM_INTERVAL_S=str(CLAIM_INTERVAL_S),
            # Never let a worker start a Redis of its own on our port while ours is
            # down: the restart scenario needs that port back.
            TASKS_EMBEDDED_REDIS="false",
            TASKS_DATA_DIR=str(self.workdir / "data"),
            TASKS_LOG_LEVEL="INFO",
        )
        return env


async def _wait_resubscribed(driver: LoadDriver, timeout_s: float) -> None:
    polls = int(timeout_s / 0.05)
    for _ in range(polls):
        try:
            if await driver.subscribers() >= 1:
                return
        except Exception:
            pass  # the driver's connection is itself coming back
        await asyncio.sleep(0.05)
    raise AssertionError(f"the driver did not resubscribe within {timeout_s}s")
