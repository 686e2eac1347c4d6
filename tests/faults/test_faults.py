"""Fault scenarios: real worker processes under load while servers and workers fail.

Each scenario drives a bounded load of creates and deletes (with duplicates and
poison mixed in), injects one fault mid-load, waits for the load to drain and then
checks every guarantee: each accepted command applied once, one event per change in
order per task, nothing left pending, dead letters exactly the poison, and one reply
per request to a client that kept listening. The figures line goes to the terminal.
"""

import asyncio

import pytest

from tests.faults.harness import Rig
from tests.faults.load import LoadPlan

pytestmark = [pytest.mark.faults, pytest.mark.timeout(150)]

FAULT_AT = 0.4


def _held(entries: dict[str, list[str]]) -> int:
    return sum(len(entry_ids) for entry_ids in entries.values())


@pytest.mark.parametrize("fault_database", ["postgres", "sqlite"], indirect=True)
async def test_worker_killed_mid_load_finishes_its_entries_after_restart(
    rig: Rig,
) -> None:
    worker = rig.worker("faults-a")
    await rig.start(worker)

    async with rig.load(LoadPlan()) as load:
        await load.wait_sent(FAULT_AT)
        held = await rig.kill_in_flight(worker)
        await asyncio.sleep(1.0)
        await rig.start(worker)
        verdict = await rig.drain_and_check(load)

    assert _held(held), f"the kill caught no entry in flight: {held}"
    assert not verdict.violations, verdict.explain()
    assert worker.finished_own_count() >= _held(held), rig.log_evidence()


async def test_survivor_claims_the_entries_of_a_worker_killed_for_good(
    rig: Rig,
) -> None:
    doomed, survivor = rig.worker("faults-doomed"), rig.worker("faults-survivor")
    await rig.start(doomed)
    await rig.start(survivor)

    # No two deletes of one task here: two live workers race on those (next test).
    async with rig.load(LoadPlan(creates=1200, double_delete_every=0)) as load:
        await load.wait_sent(FAULT_AT)
        held = await rig.kill_in_flight(doomed)
        verdict = await rig.drain_and_check(load)

    assert _held(held), f"the kill caught no entry in flight: {held}"
    assert not verdict.violations, verdict.explain()
    assert survivor.claimed_count() >= _held(held), rig.log_evidence()


async def test_two_workers_deleting_one_task_at_once_delete_it_once(
    rig: Rig,
) -> None:
    first, second = rig.worker("faults-a"), rig.worker("faults-b")
    await rig.start(first)
    await rig.start(second)
    # Every task gets two deletes under distinct message ids, published together:
    # one must win and the other must answer not_found, whichever worker takes it.
    plan = LoadPlan(creates=500, delete_every=1, double_delete_every=1)

    async with rig.load(plan) as load:
        verdict = await rig.drain_and_check(load)

    assert not verdict.violations, verdict.explain()


async def test_redis_restart_mid_load_loses_and_repeats_nothing(rig: Rig) -> None:
    worker = rig.worker("faults-a")
    await rig.start(worker)

    async with rig.load(LoadPlan()) as load:
        await load.wait_sent(FAULT_AT)
        await rig.restart_redis(load, down_s=2.0)
        verdict = await rig.drain_and_check(load)

    assert load.record.failed_publishes, "the driver never noticed Redis was down"
    assert not verdict.violations, verdict.explain()


async def test_postgres_outage_mid_load_is_waited_out(rig: Rig) -> None:
    worker = rig.worker("faults-a")
    await rig.start(worker)

    async with rig.load(LoadPlan()) as load:
        await load.wait_sent(FAULT_AT)
        await rig.interrupt_postgres(down_s=3.0)
        verdict = await rig.drain_and_check(load)

    assert "database unavailable" in worker.logs(), "the outage went unnoticed"
    assert not verdict.violations, verdict.explain()


async def test_duplicates_and_forced_redeliveries_are_applied_once(rig: Rig) -> None:
    worker = rig.worker("faults-a")
    await rig.start(worker)
    plan = LoadPlan(creates=1000, twin_every=7, late_duplicate_every=9)

    async with rig.load(plan) as load:
        stolen = await rig.steal_entries(load, per_round=10, interval_s=0.25)
        verdict = await rig.drain_and_check(load)

    assert stolen, "the ghost consumer stole no entry"
    assert not verdict.violations, verdict.explain()
    assert worker.claimed_count() >= len(stolen), rig.log_evidence()


async def test_poison_goes_to_dead_letters_and_nothing_else(rig: Rig) -> None:
    worker = rig.worker("faults-a")
    await rig.start(worker)
    plan = LoadPlan(creates=800, poison=150)

    async with rig.load(plan) as load:
        verdict = await rig.drain_and_check(load)

    assert len(list(load.record.commands_of("poison"))) == plan.poison
    assert not verdict.violations, verdict.explain()
