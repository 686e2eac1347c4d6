"""`TaskService` over an in-memory store: the registry's rules without a database."""

import itertools
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from contracts import CreateTask, DeletedTask, EventType, ModelList, Task
from worker.domain.changes import TaskChange
from worker.domain.errors import TaskNameNotFound, TaskNameTaken, TaskNotFound
from worker.repository.records import TaskRecord
from worker.service.tasks import TaskService

LAUNCH = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)
SUMMARIZERS = ["hf://facebook/bart-large-cnn", "mistral://open-mistral-7b"]


class FakeTaskStore:
    """A `TaskStore` in a dict, ordered the way the real repository orders pages."""

    def __init__(self, records: Iterable[TaskRecord] = ()) -> None:
        self._records = {record.id: record for record in records}

    def add(self, record: TaskRecord) -> TaskRecord:
        self._records[record.id] = record
        return record

    async def get(self, task_id: UUID) -> TaskRecord | None:
        return self._records.get(task_id)

    async def get_by_name(self, name: str) -> TaskRecord | None:
        matches = (r for r in self._records.values() if r.name == name)
        return next(matches, None)

    async def delete(self, record: TaskRecord) -> bool:
        return self._records.pop(record.id, None) is not None

    async def page(self, skip: int, limit: int) -> Sequence[TaskRecord]:
        ordered = sorted(self._records.values(), key=lambda r: (r.created_at, r.id))
        return ordered[skip : skip + limit]

    async def count(self) -> int:
        return len(self._records)

    @property
    def names(self) -> set[str]:
        return {record.name for record in self._records.values()}


def ticking_clock(start: datetime = LAUNCH) -> Callable[[], datetime]:
    """A clock that moves one second forward each time it is read."""
    seconds = itertools.count()
    return lambda: start + timedelta(seconds=next(seconds))


def task_record(name: str, minutes_after_launch: int = 0) -> TaskRecord:
    return TaskRecord(
        id=uuid4(),
        name=name,
        description=f"{name} of customer e-mails",
        created_at=LAUNCH + timedelta(minutes=minutes_after_launch),
        models=[f"hf://acme/{name}-base", f"hf://acme/{name}-large"],
    )


def service_over(*records: TaskRecord) -> tuple[TaskService, FakeTaskStore]:
    store = FakeTaskStore(records)
    return TaskService(store, clock=ticking_clock()), store


def summarization(name: str = "summarization") -> CreateTask:
    return CreateTask(name=name, description="Summaries", models=SUMMARIZERS)


class TestCreateTask:
    async def test_a_new_task_is_stored_with_the_clock_time(self) -> None:
        service, store = service_over()

        task = await service.create_task(summarization())

        assert task.name == "summarization"
        assert task.description == "Summaries"
        assert task.models == SUMMARIZERS
        assert task.created_at == LAUNCH
        assert await service.get_task(task.id) == task
        assert store.names == {"summarization"}

    async def test_a_new_task_records_a_created_change(self) -> None:
        service, _ = service_over()

        task = await service.create_task(summarization())

        assert service.changes == [TaskChange(EventType.TASK_CREATED, task)]

    async def test_each_task_gets_an_id_of_its_own(self) -> None:
        service, _ = service_over()

        first = await service.create_task(summarization("summarization"))
        second = await service.create_task(summarization("translation"))

        assert first.id != second.id
        assert second.created_at > first.created_at

    async def test_a_taken_name_is_refused_and_changes_nothing(self) -> None:
        service, store = service_over(task_record("summarization"))

        with pytest.raises(TaskNameTaken) as refused:
            await service.create_task(summarization())

        assert refused.value.name == "summarization"
        assert refused.value.field == "name"
        assert await store.count() == 1
        assert service.changes == []


class TestDeleteTask:
    async def test_a_deleted_task_is_gone(self) -> None:
        doomed = task_record("sentiment")
        service, store = service_over(doomed, task_record("translation"))

        deleted = await service.delete_task(doomed.id)

        assert deleted == DeletedTask(id=doomed.id)
        assert store.names == {"translation"}
        with pytest.raises(TaskNotFound):
            await service.get_task(doomed.id)

    async def test_a_delete_records_the_task_as_it_was(self) -> None:
        doomed = task_record("sentiment")
        service, _ = service_over(doomed)
        as_it_was = await service.get_task(doomed.id)

        await service.delete_task(doomed.id)

        assert service.changes == [TaskChange(EventType.TASK_DELETED, as_it_was)]

    async def test_deleting_an_unknown_id_is_refused_and_changes_nothing(
        self,
    ) -> None:
        service, store = service_over(task_record("sentiment"))
        unknown = uuid4()

        with pytest.raises(TaskNotFound) as refused:
            await service.delete_task(unknown)

        assert refused.value.task_id == unknown
        assert refused.value.field == "id"
        assert await store.count() == 1
        assert service.changes == []


class TestQueries:
    async def test_a_task_is_found_by_id(self) -> None:
        wanted = task_record("sentiment")
        service, _ = service_over(task_record("translation"), wanted)

        found = await service.get_task(wanted.id)

        assert found == Task(
            id=wanted.id,
            name="sentiment",
            description="sentiment of customer e-mails",
            created_at=LAUNCH,
            models=["hf://acme/sentiment-base", "hf://acme/sentiment-large"],
        )

    async def test_an_unknown_id_is_not_found(self) -> None:
        service, _ = service_over(task_record("sentiment"))
        unknown = uuid4()

        with pytest.raises(TaskNotFound) as refused:
            await service.get_task(unknown)

        assert str(unknown) in refused.value.message

    async def test_the_models_of_a_task_are_found_by_name(self) -> None:
        service, _ = service_over(task_record("sentiment"), task_record("ocr"))

        models = await service.task_models("ocr")

        assert models == ModelList(
            total=2, items=["hf://acme/ocr-base", "hf://acme/ocr-large"]
        )

    async def test_the_models_of_an_unknown_name_are_not_found(self) -> None:
        service, _ = service_over(task_record("sentiment"))

        with pytest.raises(TaskNameNotFound) as refused:
            await service.task_models("sentimental")

        assert refused.value.name == "sentimental"
        assert refused.value.field == "name"

    async def test_queries_record_no_changes(self) -> None:
        sentiment = task_record("sentiment")
        service, _ = service_over(sentiment)

        await service.get_task(sentiment.id)
        await service.task_models("sentiment")
        await service.list_tasks(0, 10)

        assert service.changes == []


class TestListTasks:
    async def test_a_page_holds_the_tasks_after_skip_oldest_first(self) -> None:
        names = ["ocr", "asr", "ner", "qa", "tts"]
        records = [task_record(name, minute) for minute, name in enumerate(names)]
        service, _ = service_over(*reversed(records))

        page = await service.list_tasks(1, 2)

        assert [task.name for task in page.items] == ["asr", "ner"]

    async def test_the_total_counts_every_task_not_just_the_page(self) -> None:
        records = [task_record(f"task-{minute}", minute) for minute in range(7)]
        service, _ = service_over(*records)

        page = await service.list_tasks(5, 100)

        assert page.total == 7
        assert [task.name for task in page.items] == ["task-5", "task-6"]

    async def test_a_page_past_the_end_is_empty_but_keeps_the_total(self) -> None:
        service, _ = service_over(task_record("ocr"), task_record("asr", 1))

        page = await service.list_tasks(10, 100)

        assert page.items == []
        assert page.total == 2

    async def test_an_empty_registry_lists_nothing(self) -> None:
        service, _ = service_over()

        page = await service.list_tasks(0, 100)

        assert page.total == 0
        assert page.items == []
