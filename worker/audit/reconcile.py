"""`tasks audit reconcile`: rebuild the task table from the log alone, and compare.

Every change must have its event and every event its change: replaying
`task.created` and `task.deleted` in order must give exactly the live table, and
the task tally (the total that `list` answers) must count it.
"""

from typing import Any

import orjson

from contracts import EventType, Task
from worker.audit.verify import Verdict
from worker.repository.unit_of_work import UnitOfWork
from worker.service.tasks import task_view

SHOWN = 20


async def reconcile(uow: UnitOfWork) -> Verdict:
    """Differences between the tasks the log implies and the tasks stored."""
    start = await uow.audit.chain_start()
    if start.first_seq > 1:
        return Verdict(
            findings=[
                f"the log starts at seq {start.first_seq}: retention removed older "
                "events, and the table cannot be rebuilt without them"
            ]
        )

    verdict = Verdict()
    rebuilt = await _replay(uow, verdict)
    live = {record.id: task_view(record) async for record in uow.tasks.every()}

    for task_id in sorted(rebuilt.keys() - live.keys(), key=str)[:SHOWN]:
        verdict.findings.append(f"task {task_id} was deleted without an event")
    for task_id in sorted(live.keys() - rebuilt.keys(), key=str)[:SHOWN]:
        verdict.findings.append(f"task {task_id} exists without a created event")
    for task_id in sorted(live.keys() & rebuilt.keys(), key=str):
        if live[task_id] != rebuilt[task_id]:
            verdict.findings.append(f"task {task_id} differs from its created event")

    tallied = await uow.tasks.count()
    if tallied != len(live):
        verdict.findings.append(
            f"the task tally says {tallied} tasks but the table holds {len(live)}"
        )
    return verdict


async def _replay(uow: UnitOfWork, verdict: Verdict) -> dict[Any, Task]:
    tasks: dict[Any, Task] = {}
    async for seq, payload, _ in uow.audit.stream():
        verdict.checked += 1
        event = orjson.loads(payload)
        if event["type"] == EventType.TASK_CREATED:
            task = Task.model_validate(event["task"])
            if task.id in tasks:
                verdict.findings.append(f"seq {seq}: task {task.id} created twice")
            tasks[task.id] = task
        elif event["type"] == EventType.TASK_DELETED:
            task = Task.model_validate(event["task"])
            if tasks.pop(task.id, None) is None:
                verdict.findings.append(f"seq {seq}: deletes unknown task {task.id}")
    return tasks
