"""`apply_batch` on SQLite and PostgreSQL: once per message id, events in the outbox."""

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import (
    CREATE_STREAM,
    DELETE_STREAM,
    EVENTS_STREAM,
    QUERY_STREAM,
    CreateTask,
    DeleteTask,
    EventType,
    GetTask,
    ListTasks,
    TaskEvent,
    TaskModels,
)
from worker.repository.records import TaskRecord
from worker.repository.tasks import TaskRepository
from worker.repository.unit_of_work import UnitOfWork, UnitOfWorkFactory
from worker.service.batches import Command, CommandBody, apply_batch
from worker.service.outcomes import Outcome
from worker.transport.entries import Rejection, parse_command, read_entry

SessionFactory = async_sessionmaker[AsyncSession]

PASTA_MODELS = ["hf://trattoria/ravioli-7b", "oai://gpt-4-turbo"]


def command(
    stream: str, body: CommandBody, message_id: str, correlation_id: str
) -> Command:
    return Command(
        stream=stream,
        message_id=message_id,
        correlation_id=correlation_id,
        body=body,
    )


def create(name: str, message_id: str, correlation_id: str = "corr-dinner") -> Command:
    body = CreateTask(name=name, description="Pasta shapes", models=PASTA_MODELS)
    return command(CREATE_STREAM, body, message_id, correlation_id)


def delete(
    task_id: UUID | str, message_id: str, correlation_id: str = "corr-dinner"
) -> Command:
    body = DeleteTask(id=UUID(str(task_id)))
    return command(DELETE_STREAM, body, message_id, correlation_id)


def query(body: GetTask | ListTasks | TaskModels, message_id: str) -> Command:
    return command(QUERY_STREAM, body, message_id, message_id)


def reply_of(outcome: Outcome) -> dict[str, Any]:
    reply: dict[str, Any] = orjson.loads(outcome.body)
    return reply


def result_of(outcome: Outcome) -> dict[str, Any]:
    assert outcome.ok, outcome.body
    result: dict[str, Any] = reply_of(outcome)["result"]
    return result


async def apply_one(new_unit_of_work: UnitOfWorkFactory, command: Command) -> Outcome:
    (outcome,) = await apply_batch(new_unit_of_work, [command])
    return outcome


async def created_id(new_unit_of_work: UnitOfWorkFactory, name: str) -> str:
    outcome = await apply_one(new_unit_of_work, create(name, f"msg-create-{name}"))
    return str(result_of(outcome)["id"])


async def stored_tasks(new_unit_of_work: UnitOfWorkFactory) -> dict[str, UUID]:
    """Every stored task: name to id."""
    async with new_unit_of_work() as uow:
        return {record.name: record.id for record in await uow.tasks.page(0, 1000)}


async def staged_log(new_unit_of_work: UnitOfWorkFactory) -> list[TaskEvent]:
    """Every event waiting in the outbox: changes and rejections, in log order."""
    async with new_unit_of_work() as uow:
        staged = await uow.outbox.oldest(1000)
        assert {event.stream for event in staged} <= {EVENTS_STREAM}
        return [TaskEvent.model_validate_json(event.payload) for event in staged]


async def staged_events(new_unit_of_work: UnitOfWorkFactory) -> list[TaskEvent]:
    """The change events waiting in the outbox."""
    return [e for e in await staged_log(new_unit_of_work) if e.type.is_change]


async def staged_rejections(new_unit_of_work: UnitOfWorkFactory) -> list[TaskEvent]:
    """The rejection events waiting in the outbox."""
    return [e for e in await staged_log(new_unit_of_work) if not e.type.is_change]


async def processed_count(new_unit_of_work: UnitOfWorkFactory) -> int:
    async with new_unit_of_work() as uow:
        return await uow.processed.count()


class CountedUnitsOfWork:
    """A unit-of-work factory that counts the transactions a batch opens."""

    def __init__(self, new_unit_of_work: UnitOfWorkFactory) -> None:
        self._new_unit_of_work = new_unit_of_work
        self.opened = 0

    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        self.opened += 1
        return self._new_unit_of_work(read_only=read_only)


class TestOncePerMessageId:
    async def test_a_create_twice_in_one_batch_creates_one_task(
        self, new_unit_of_work: UnitOfWorkFactory
    ) -> None:
        ravioli = create("ravioli", "msg-ravioli")
        counted = CountedUnitsOfWork(new_unit_of_work)

        first, again = await apply_batch(counted, [ravioli, ravioli])

        assert first.ok
        assert again.body == first.body
        assert counted.opened == 1
        assert list(await stored_tasks(new_unit_of_work)) == ["ravioli"]
        assert len(await staged_events(new_unit_of_work)) == 1

    async def test_a_create_redelivered_later_gets_the_identical_outcome(
        self, new_unit_of_work: UnitOfWorkFactory
    ) -> None:
        ravioli = create("ravioli", "msg-ravioli")

        first = await apply_one(new_unit_of_work, ravioli)
        again = await apply_one(new_unit_of_work, ravioli)

        assert again.body == first.body
        assert reply_of(again)["ok"] is True
        assert list(await stored_tasks(new_unit_of_work)) == ["ravioli"]
        assert len(await staged_events(new_unit_of_work)) == 1
        assert await processed_count(new_unit_of_work) == 1

    async def test_a_redelivered_delete_is_ok_again_but_a_new_one_is_not_found(
        self, new_unit_of_work: UnitOfWorkFactory
    ) -> None:
        task_id = await created_id(new_unit_of_work, "gnocchi")
        removal = delete(task_id, "msg-delete-gnocchi")

        first = await apply_one(new_unit_of_work, removal)
        again = await apply_one(new_unit_of_work, removal)
        fresh = await apply_one(new_unit_of_work, delete(task_id, "msg-delete-2"))

        assert first.ok
        assert again.body == first.body
        assert fresh.error_code == "not_found"
        events = await staged_events(new_unit_of_work)
        assert [event.type for event in events] == [
            EventType.TASK_CREATED,
            EventType.TASK_DELETED,
        ]

    async def test_a_redelivered_conflict_stays_a_conflict_once_the_name_is_free(
        self, new_unit_of_work: UnitOfWorkFactory
    ) -> None:
        task_id = await created_id(new_unit_of_work, "tortellini")
        latecomer = create("tortellini", "msg-latecomer")
        refused = await apply_one(new_unit_of_work, latecomer)
        await apply_one(new_unit_of_work, delete(task_id, "msg-clear-the-table"))

        again = await apply_one(new_unit_of_work, latecomer)

        assert refused.error_code == "conflict"
        assert again.body == refused.body
        assert await stored_tasks(new_unit_of_work) == {}

    async def test_one_message_id_on_two_streams_is_two_messages(
        self, new_unit_of_work: UnitOfWorkFactory
    ) -> None:
        task_id = await created_id(new_unit_of_work, "penne")
        shared_id = "msg-create-penne"

        deleted = await apply_one(new_unit_of_work, delete(task_id, shared_id))

        assert result_of(deleted) == {"id": task_id}
        assert await stored_tasks(new_unit_of_work) == {}


class TestOneBatch:
    async def test_two_creates_of_one_name_first_wins_second_conflicts(
        self, new_unit_of_work: UnitOfWorkFactory
    ) -> None:
        batch = [
            create("lasagne", "msg-lasagne-1"),
            create("lasagne", "msg-lasagne-2"),
        ]

        counted = CountedUnitsOfWork(new_unit_of_work)

        first, second = await apply_batch(counted, batch)

        assert counted.opened == 1
        assert result_of(first)["name"] == "lasagne"
        assert second.error_code == "conflict"
        assert reply_of(second)["error"]["details"][0]["field"] == "name"
        stored = await stored_tasks(new_unit_of_work)
        assert stored == {"lasagne": UUID(result_of(first)["id"])}

    async def test_outcomes_come_back_in_command_order(
        self, new_unit_of_work: UnitOfWorkFactory
    ) -> None:
        batch = [
            create("fusilli", "msg-1"),
            create("farfalle", "msg-2"),
            create("fusilli", "msg-3"),
            create("orecchiette", "msg-4"),
        ]

        outcomes = await apply_batch(new_unit_of_work, batch)

        names = [reply_of(o).get("result", {}).get("name") for o in outcomes]
        assert names == ["fusilli", "farfalle", None, "orecchiette"]
        assert [o.error_code for o in outcomes] == [None, None, "conflict", None]

    async def test_two_deletes_of_one_task_first_wins_second_is_not_found(
        self, new_unit_of_work: UnitOfWorkFactory
    ) -> None:
        task_id = await created_id(new_unit_of_work, "cannelloni")
        batch = [delete(task_id, "msg-delete-1"), delete(task_id, "msg-delete-2")]

        first, second = await apply_batch(new_unit_of_work, batch)

        assert result_of(first) == {"id": task_id}
        assert second.error_code == "not_found"
        events = await staged_events(new_unit_of_work)
        assert [event.causation_id for event in events] == [
            "msg-create-cannelloni",
            "msg-delete-1",
        ]

    async def test_an_empty_batch_opens_no_transaction(self) -> None:
        def no_unit_of_work() -> UnitOfWork:
            raise AssertionError("an empty batch needs no transaction")

        assert await apply_batch(no_unit_of_work, []) == []


class TestOutbox:
    async def test_each_change_stages_one_event_naming_its_cause(
        self, new_unit_of_work: UnitOfWorkFactory
    ) -> None:
        batch = [
            create("ravioli", "msg-ravioli", correlation_id="corr-lunch"),
            create("gnocchi", "msg-gnocchi", correlation_id="corr-dinner"),
        ]
        ravioli, _ = await apply_batch(new_unit_of_work, batch)
        removal = delete(result_of(ravioli)["id"], "msg-no-ravioli", "corr-diet")
        await apply_one(new_unit_of_work, removal)

        events = await staged_events(new_unit_of_work)

        assert [(e.type, e.causation_id, e.correlation_id) for e in events] == [
            (EventType.TASK_CREATED, "msg-ravioli", "corr-lunch"),
            (EventType.TASK_CREATED, "msg-gnocchi", "corr-dinner"),
            (EventType.TASK_DELETED, "msg-no-ravioli", "corr-diet"),
        ]
        assert len({event.event_id for event in events}) == 3

    async def test_the_events_carry_the_task_after_create_and_before_delete(
        self, new_unit_of_work: UnitOfWorkFactory
    ) -> None:
        created = await apply_one(new_unit_of_work, create("ravioli", "msg-1"))
        task = result_of(created)
        await apply_one(new_unit_of_work, delete(task["id"], "msg-2"))

        created_event, deleted_event = await staged_events(new_unit_of_work)

        assert json.loads(created_event.task.model_dump_json()) == task
        assert deleted_event.task == created_event.task
        assert created_event.occurred_at.utcoffset() is not None

    async def test_refused_commands_stage_a_rejection_and_no_change(
        self, new_unit_of_work: UnitOfWorkFactory
    ) -> None:
        await created_id(new_unit_of_work, "ravioli")
        missing_id = uuid4()

        taken = await apply_one(new_unit_of_work, create("ravioli", "msg-again"))
        unknown = await apply_one(new_unit_of_work, delete(missing_id, "msg-nothing"))

        assert taken.error_code == "conflict"
        assert unknown.error_code == "not_found"
        assert len(await staged_events(new_unit_of_work)) == 1
        conflict, not_found = await staged_rejections(new_unit_of_work)
        assert conflict.type == "task.create_rejected"
        assert conflict.reason is not None and conflict.reason.code == "conflict"
        assert conflict.causation_id == "msg-again"
        assert not_found.type == "task.delete_rejected"
        assert not_found.task_id == missing_id
        assert await processed_count(new_unit_of_work) == 3

    async def test_queries_leave_no_processed_row_and_no_event(
        self, new_unit_of_work: UnitOfWorkFactory
    ) -> None:
        task_id = await created_id(new_unit_of_work, "ravioli")
        batch = [
            query(GetTask(kind="get", id=UUID(task_id)), "msg-get"),
            query(ListTasks(kind="list"), "msg-list"),
            query(TaskModels(kind="models", name="ravioli"), "msg-models"),
        ]

        outcomes = await apply_batch(new_unit_of_work, batch)

        assert all(outcome.ok for outcome in outcomes)
        assert await processed_count(new_unit_of_work) == 1
        assert len(await staged_events(new_unit_of_work)) == 1

    async def test_a_repeated_query_sees_the_registry_as_it_is_now(
        self, new_unit_of_work: UnitOfWorkFactory
    ) -> None:
        models_query = query(TaskModels(kind="models", name="ravioli"), "msg-q")

        before = await apply_one(new_unit_of_work, models_query)
        await created_id(new_unit_of_work, "ravioli")
        after = await apply_one(new_unit_of_work, models_query)

        assert before.error_code == "not_found"
        assert result_of(after) == {"total": 2, "items": PASTA_MODELS}


class RivalAfterRead(TaskRepository):
    """Lets a rival commit a task of the same name right after a lookup found none.

    The batch really read the name as free; the rival's row is committed by another
    session before the batch writes its own, as a second worker would.
    """

    def __init__(
        self, session: AsyncSession, rival: Callable[[str], Awaitable[None]]
    ) -> None:
        super().__init__(session)
        self._rival = rival

    async def get_by_name(self, name: str) -> TaskRecord | None:
        found = await super().get_by_name(name)
        if found is None:
            await self._rival(name)
        return found


class RacedUnitOfWork(UnitOfWork):
    def __init__(
        self, session_factory: SessionFactory, rival: Callable[[str], Awaitable[None]]
    ) -> None:
        super().__init__(session_factory)
        self._rival = rival

    async def __aenter__(self) -> UnitOfWork:
        uow = await super().__aenter__()
        uow.tasks = RivalAfterRead(uow.tasks.session, self._rival)
        return uow


class Race:
    """The first unit of work loses `name` to a rival; later ones run undisturbed."""

    def __init__(self, session_factory: SessionFactory, name: str) -> None:
        self.session_factory = session_factory
        self.name = name
        self.rival_id = uuid4()
        self.rival_committed = False
        self.units_opened = 0

    def new_unit_of_work(self) -> UnitOfWork:
        self.units_opened += 1
        if self.units_opened == 1:
            return RacedUnitOfWork(self.session_factory, self._rival_commits)
        return UnitOfWork(self.session_factory)

    async def _rival_commits(self, name: str) -> None:
        if name != self.name or self.rival_committed:
            return
        self.rival_committed = True
        async with UnitOfWork(self.session_factory) as rival:
            rival.tasks.add(
                TaskRecord(
                    id=self.rival_id,
                    name=name,
                    description="committed by another worker",
                    created_at=datetime.now(UTC),
                    models=["hf://rival/model"],
                )
            )
            await rival.commit()


@pytest.fixture
def race(session_factory: SessionFactory) -> Callable[[str], Race]:
    return lambda name: Race(session_factory, name)


class TestNameRace:
    async def test_a_create_that_loses_the_race_is_answered_conflict(
        self, race: Callable[[str], Race], new_unit_of_work: UnitOfWorkFactory
    ) -> None:
        ravioli = race("ravioli")

        (outcome,) = await apply_batch(
            ravioli.new_unit_of_work, [create("ravioli", "msg-ravioli")]
        )

        assert ravioli.rival_committed
        assert outcome.error_code == "conflict"
        assert await stored_tasks(new_unit_of_work) == {"ravioli": ravioli.rival_id}
        assert await staged_events(new_unit_of_work) == []
        assert ravioli.units_opened > 1

    async def test_only_the_command_that_lost_the_race_is_refused(
        self, race: Callable[[str], Race], new_unit_of_work: UnitOfWorkFactory
    ) -> None:
        ravioli = race("ravioli")
        batch = [create("ravioli", "msg-ravioli"), create("gnocchi", "msg-gnocchi")]

        outcomes = await apply_batch(ravioli.new_unit_of_work, batch)

        assert [o.error_code for o in outcomes] == ["conflict", None]
        stored = await stored_tasks(new_unit_of_work)
        assert stored == {
            "ravioli": ravioli.rival_id,
            "gnocchi": UUID(result_of(outcomes[1])["id"]),
        }
        events = await staged_events(new_unit_of_work)
        assert [event.causation_id for event in events] == ["msg-gnocchi"]

    async def test_the_loser_redelivered_is_answered_the_same_conflict(
        self, race: Callable[[str], Race], new_unit_of_work: UnitOfWorkFactory
    ) -> None:
        ravioli = race("ravioli")
        ravioli_create = create("ravioli", "msg-ravioli")
        (lost,) = await apply_batch(ravioli.new_unit_of_work, [ravioli_create])

        again = await apply_one(new_unit_of_work, ravioli_create)

        assert again.body == lost.body
        assert lost.error_code == "conflict"


async def answer_to(
    new_unit_of_work: UnitOfWorkFactory, stream: str, body: dict[str, Any]
) -> dict[str, Any]:
    """The reply the worker gives a plain entry: a rejection or a batch outcome."""
    # `json`, not `orjson`: the body may hold integers beyond 64 bits.
    fields = {b"data": json.dumps(body).encode(), b"message_id": b"msg-edge"}
    parsed = parse_command(read_entry(stream, "1-0", fields))
    if isinstance(parsed, Rejection):
        return {"ok": False, "error": parsed.error.model_dump(mode="json")}
    return reply_of(await apply_one(new_unit_of_work, parsed))


def answered_or_refused_as_invalid(reply: dict[str, Any]) -> bool:
    return reply["ok"] is True or reply["error"]["code"] == "validation_error"


class TestEveryValidBodyGetsAnAnswer:
    """What passes validation must be storable and queryable on both databases."""

    @pytest.mark.parametrize(
        "body",
        [
            {"name": "ravi\x00oli", "models": PASTA_MODELS},
            {"name": "ravioli", "description": "ricotta\x00", "models": []},
            {"name": "ravioli", "models": ["hf://trattoria/ravi\x00oli"]},
        ],
        ids=["name", "description", "model"],
    )
    async def test_a_create_holding_a_nul_character(
        self, new_unit_of_work: UnitOfWorkFactory, body: dict[str, Any]
    ) -> None:
        reply = await answer_to(new_unit_of_work, CREATE_STREAM, body)

        assert answered_or_refused_as_invalid(reply), reply

    async def test_a_models_query_for_a_name_holding_a_nul_character(
        self, new_unit_of_work: UnitOfWorkFactory
    ) -> None:
        body = {"kind": "models", "name": "ravi\x00oli"}

        reply = await answer_to(new_unit_of_work, QUERY_STREAM, body)

        assert reply["ok"] is True or reply["error"]["code"] in {
            "validation_error",
            "not_found",
        }, reply

    @pytest.mark.parametrize("skip", [2**63 - 1, 2**63, 10**30])
    async def test_a_list_query_skipping_more_than_a_64_bit_integer(
        self, new_unit_of_work: UnitOfWorkFactory, skip: int
    ) -> None:
        body = {"kind": "list", "skip": skip}

        reply = await answer_to(new_unit_of_work, QUERY_STREAM, body)

        assert answered_or_refused_as_invalid(reply), reply
        if reply["ok"]:
            assert reply["result"] == {"total": 0, "items": []}
