"""The `tasks` command line, run as a child process against a worker in this loop."""

import asyncio
import json
import os
import resource
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from faststream import FastStream
from redis.asyncio import Redis

from contracts.client import TaskClient
from contracts.events import EventType, TaskEvent
from contracts.replies import Task
from contracts.streams import DATA_FIELD, DEAD_LETTER_STREAM, EVENTS_STREAM
from worker.migrate import upgrade_to_latest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CLI_DEADLINE_S = 30.0
# `tasks` as installed: the registry's commands plus `audit`.
TASKS_MODULE = "worker.audit.cli"
WORKER_MODULE = "worker.cli"

TUTORIAL_MODELS = [
    "hf://facebook/bart-large-cnn",
    "mistral://open-mistral-7b",
    "oai://gpt-4-turbo",
]


@dataclass(frozen=True)
class CliRun:
    exit_status: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()


async def run_cli(
    *arguments: str,
    redis_url: str | None = None,
    variables: Mapping[str, str] | None = None,
    module: str = "contracts.cli",
    preexec_fn: Callable[[], None] | None = None,
) -> CliRun:
    """Run `tasks` as a child process; waiting on it keeps this loop serving."""
    process = await _start_cli(
        *arguments,
        redis_url=redis_url,
        variables=variables,
        module=module,
        preexec_fn=preexec_fn,
    )
    return await _finish(process)


async def _start_cli(
    *arguments: str,
    redis_url: str | None = None,
    variables: Mapping[str, str] | None = None,
    module: str = "contracts.cli",
    preexec_fn: Callable[[], None] | None = None,
) -> asyncio.subprocess.Process:
    url_option = ["--redis-url", redis_url] if redis_url is not None else []
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *url_option,
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=PROJECT_ROOT,
        env=_environment(variables or {}),
        preexec_fn=preexec_fn,
    )


async def run_audit(*arguments: str, **options: Any) -> CliRun:
    """`tasks audit ...`, as the installed `tasks` command runs it."""
    return await run_cli("audit", *arguments, module=TASKS_MODULE, **options)


async def _finish(process: asyncio.subprocess.Process) -> CliRun:
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), CLI_DEADLINE_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"tasks did not exit within {CLI_DEADLINE_S}s") from None
    assert process.returncode is not None
    return CliRun(process.returncode, stdout.decode(), stderr.decode())


def _environment(variables: Mapping[str, str]) -> dict[str, str]:
    # The caller's TASKS_* settings must not leak into the CLI under test.
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("TASKS_")
    }
    return {**inherited, **variables}


def task_lines(task: Task) -> list[str]:
    return [
        f"id:          {task.id}",
        f"name:        {task.name}",
        f"description: {task.description}".rstrip(),
        f"created_at:  {task.created_at.isoformat()}",
        f"models:      {task.models[0]}",
        *(f"             {uri}" for uri in task.models[1:]),
    ]


def an_event(name: str, event_type: EventType = EventType.TASK_CREATED) -> TaskEvent:
    task = Task(
        id=uuid4(),
        name=name,
        description="",
        created_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        models=["hf://t5-small"],
    )
    return TaskEvent(
        seq=7,
        event_id=uuid4(),
        type=event_type,
        occurred_at=datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
        correlation_id=uuid4().hex,
        causation_id=uuid4().hex,
        task_id=task.id,
        task=task,
        prev_hash="0" * 64,
        hash="f" * 64,
    )


def event_line(event: TaskEvent) -> str:
    assert event.task is not None
    return (
        f"{event.seq}  {event.occurred_at.isoformat()}  {event.type}  "
        f"{event.task.id}  {event.task.name}"
    )


async def append_events(redis: Redis, *events: TaskEvent) -> list[str]:
    """Append events as the worker's relay does; returns their entry ids."""
    entry_ids = []
    for event in events:
        entry_id = await redis.xadd(
            EVENTS_STREAM, {DATA_FIELD: event.model_dump_json()}
        )
        entry_ids.append(entry_id.decode())
    return entry_ids


async def wait_until_reading_events(redis: Redis, redis_url: str) -> None:
    """Return once a client of this test's database blocks in XREAD."""
    database = redis_url.rsplit("/", 1)[-1]
    async with asyncio.timeout(10):
        while True:
            clients = await redis.client_list()
            if any(
                client["cmd"] == "xread" and client["db"] == database
                for client in clients
            ):
                return
            await asyncio.sleep(0.02)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A migrated SQLite file: here the CLI is under test, not the database."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}"
    upgrade_to_latest(url, "sqlite")
    return url


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port held bound but not listening, so connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


@pytest.fixture
async def summarization(client: TaskClient) -> AsyncIterator[Task]:
    yield await client.create("summarization", TUTORIAL_MODELS, "News summaries")


async def test_create_prints_the_new_task_as_aligned_fields(
    client: TaskClient, redis_url: str
) -> None:
    run = await run_cli(
        "create",
        "summarization",
        *("-m", TUTORIAL_MODELS[0], "--model", TUTORIAL_MODELS[1]),
        *("--description", "News summaries"),
        redis_url=redis_url,
    )

    [stored] = (await client.list()).items
    assert (run.exit_status, run.stderr) == (0, "")
    assert run.stdout.splitlines() == task_lines(stored)
    assert stored.models == TUTORIAL_MODELS[:2]


async def test_create_with_json_prints_the_task_json(
    client: TaskClient, redis_url: str
) -> None:
    run = await run_cli(
        "--json", "create", "translation", "-m", "hf://t5-small", redis_url=redis_url
    )

    printed = Task.model_validate_json(run.stdout)
    assert run.exit_status == 0
    assert printed == await client.get(printed.id)
    assert printed.description == ""


async def test_get_prints_the_task_as_aligned_fields(
    summarization: Task, redis_url: str
) -> None:
    run = await run_cli("get", str(summarization.id), redis_url=redis_url)

    assert run.exit_status == 0
    assert run.stdout.splitlines() == task_lines(summarization)


async def test_get_with_json_prints_the_task_json(
    summarization: Task, redis_url: str
) -> None:
    run = await run_cli("--json", "get", str(summarization.id), redis_url=redis_url)

    assert run.exit_status == 0
    assert Task.model_validate_json(run.stdout) == summarization


async def test_list_prints_a_table_and_the_total(
    client: TaskClient, redis_url: str
) -> None:
    first = await client.create("summarization", TUTORIAL_MODELS)
    second = await client.create("qa", ["hf://deepset/roberta-base-squad2"])
    await client.create("translation", ["hf://t5-small"])

    run = await run_cli("list", "--limit", "2", redis_url=redis_url)

    header, *rows, total = run.stdout.splitlines()
    assert run.exit_status == 0
    assert header.split() == ["ID", "NAME", "MODELS", "CREATED"]
    assert [row.split()[:3] for row in rows] == [
        [str(first.id), "summarization", "3"],
        [str(second.id), "qa", "1"],
    ]
    assert rows[1].index("qa") == header.index("NAME")
    assert total == "2 shown, 3 in total"


async def test_list_with_json_prints_the_page_json(
    client: TaskClient, redis_url: str
) -> None:
    await client.create("summarization", TUTORIAL_MODELS)
    second = await client.create("qa", ["hf://deepset/roberta-base-squad2"])

    run = await run_cli("--json", "list", "--skip", "1", redis_url=redis_url)

    page = json.loads(run.stdout)
    assert run.exit_status == 0
    assert page["total"] == 2
    assert [item["id"] for item in page["items"]] == [str(second.id)]


async def test_list_of_an_empty_registry_shows_only_the_total(
    worker: FastStream, redis_url: str
) -> None:
    run = await run_cli("list", redis_url=redis_url)

    assert run.exit_status == 0
    assert run.stdout.splitlines()[-1] == "0 shown, 0 in total"


async def test_models_prints_one_uri_per_line(
    summarization: Task, redis_url: str
) -> None:
    run = await run_cli("models", "summarization", redis_url=redis_url)

    assert run.exit_status == 0
    assert run.stdout.splitlines() == TUTORIAL_MODELS


async def test_models_with_json_prints_the_model_list_json(
    summarization: Task, redis_url: str
) -> None:
    run = await run_cli("--json", "models", "summarization", redis_url=redis_url)

    assert run.exit_status == 0
    assert json.loads(run.stdout) == {"total": 3, "items": TUTORIAL_MODELS}


async def test_delete_confirms_the_deleted_id(
    summarization: Task, redis_url: str
) -> None:
    run = await run_cli("delete", str(summarization.id), redis_url=redis_url)

    assert run.exit_status == 0
    assert run.stdout == f"deleted {summarization.id}\n"


async def test_delete_with_json_prints_the_deleted_id_json(
    summarization: Task, client: TaskClient, redis_url: str
) -> None:
    run = await run_cli("--json", "delete", str(summarization.id), redis_url=redis_url)

    assert run.exit_status == 0
    assert json.loads(run.stdout) == {"id": str(summarization.id)}
    assert (await client.list()).total == 0


async def test_tutorial_walkthrough_ends_with_the_deleted_task_not_found(
    worker: FastStream, redis_url: str
) -> None:
    model_options = [part for uri in TUTORIAL_MODELS for part in ("-m", uri)]
    created = await run_cli(
        "--json", "create", "summarization", *model_options, redis_url=redis_url
    )
    task_id = json.loads(created.stdout)["id"]

    listed = await run_cli("list", redis_url=redis_url)
    models = await run_cli("models", "summarization", redis_url=redis_url)
    fetched = await run_cli("get", task_id, redis_url=redis_url)
    deleted = await run_cli("delete", task_id, redis_url=redis_url)
    fetched_again = await run_cli("get", task_id, redis_url=redis_url)

    assert [created.exit_status, listed.exit_status, models.exit_status] == [0, 0, 0]
    assert task_id in listed.stdout
    assert listed.stdout.splitlines()[-1] == "1 shown, 1 in total"
    assert models.stdout.splitlines() == TUTORIAL_MODELS
    assert fetched.stdout.splitlines()[0] == f"id:          {task_id}"
    assert (deleted.exit_status, deleted.stdout) == (0, f"deleted {task_id}\n")
    [refusal] = fetched_again.stderr_lines
    assert (fetched_again.exit_status, fetched_again.stdout) == (1, "")
    assert refusal.startswith("tasks: not_found: ")
    assert task_id in refusal


async def test_an_invalid_model_uri_exits_1_naming_the_field(
    client: TaskClient, redis_url: str
) -> None:
    run = await run_cli(
        "create", "summarization", "-m", "hf://ok", "-m", "bart", redis_url=redis_url
    )

    [line] = run.stderr_lines
    assert (run.exit_status, run.stdout) == (1, "")
    assert line.startswith("tasks: validation_error: ")
    assert "models.1: " in line
    assert (await client.list()).total == 0


async def test_a_taken_name_exits_1_with_a_conflict(
    summarization: Task, redis_url: str
) -> None:
    run = await run_cli("create", "summarization", "-m", "hf://x", redis_url=redis_url)

    [line] = run.stderr_lines
    assert (run.exit_status, run.stdout) == (1, "")
    assert line.startswith("tasks: conflict: ")
    assert "'summarization'" in line


async def test_a_request_without_a_worker_exits_3_with_a_timeout(
    redis_url: str,
) -> None:
    run = await run_cli("--timeout", "0.3", "list", redis_url=redis_url)

    [line] = run.stderr_lines
    assert (run.exit_status, run.stdout) == (3, "")
    assert line.startswith("tasks: timeout: no reply on task.query within 0.3s")


async def test_unreachable_redis_exits_3_with_one_line_and_no_traceback(
    silent_port: int,
) -> None:
    url = f"redis://127.0.0.1:{silent_port}/0"

    run = await run_cli("--timeout", "2", "get", str(uuid4()), redis_url=url)

    [line] = run.stderr_lines
    assert (run.exit_status, run.stdout) == (3, "")
    assert line.startswith(f"tasks: cannot reach Redis at {url}: ")


async def test_events_at_an_unreachable_redis_exit_3(silent_port: int) -> None:
    url = f"redis://127.0.0.1:{silent_port}/0"

    run = await run_cli("events", redis_url=url)

    [line] = run.stderr_lines
    assert run.exit_status == 3
    assert line.startswith(f"tasks: cannot reach Redis at {url}: ")


async def test_a_password_in_the_redis_url_is_hidden(silent_port: int) -> None:
    url = f"redis://reader:s3cret@127.0.0.1:{silent_port}/0?password=s3cret"

    run = await run_cli("list", redis_url=url)

    assert run.exit_status == 3
    assert "s3cret" not in run.stderr
    assert f"redis://reader:***@127.0.0.1:{silent_port}/0?password=***" in run.stderr


async def test_the_redis_url_defaults_to_tasks_redis_url(
    summarization: Task, redis_url: str
) -> None:
    variables = {"TASKS_REDIS_URL": redis_url}

    run = await run_cli("models", "summarization", variables=variables)

    assert run.exit_status == 0
    assert run.stdout.splitlines() == TUTORIAL_MODELS


async def test_events_count_2_prints_the_create_and_the_delete(
    summarization: Task, client: TaskClient, redis_url: str
) -> None:
    await client.delete(summarization.id)

    # The relay appends events after the reply, so wait for them rather than race.
    run = await run_cli("events", "--follow", "--count", "2", redis_url=redis_url)

    created, deleted = (line.split("  ") for line in run.stdout.splitlines())
    assert run.exit_status == 0
    assert created[2:] == ["task.created", str(summarization.id), "summarization"]
    assert deleted[2:] == ["task.deleted", str(summarization.id), "summarization"]
    assert datetime.fromisoformat(created[1]).utcoffset() is not None
    assert int(deleted[0]) == int(created[0]) + 1


async def test_events_with_json_print_one_event_object_per_line(
    summarization: Task, client: TaskClient, redis_url: str
) -> None:
    await client.delete(summarization.id)

    run = await run_cli(
        "--json", "events", "--follow", "--count", "2", redis_url=redis_url
    )

    events = [TaskEvent.model_validate_json(line) for line in run.stdout.splitlines()]
    assert run.exit_status == 0
    assert [event.type for event in events] == [
        EventType.TASK_CREATED,
        EventType.TASK_DELETED,
    ]
    assert {event.task.id for event in events} == {summarization.id}


async def test_events_follow_waits_for_an_event_still_to_come(
    client: TaskClient, redis: Redis, redis_url: str
) -> None:
    follower = await _start_cli(
        "events", "--follow", "--count", "1", redis_url=redis_url
    )
    await wait_until_reading_events(redis, redis_url)

    task = await client.create("summarization", TUTORIAL_MODELS)

    run = await _finish(follower)
    [line] = run.stdout.splitlines()
    assert run.exit_status == 0
    assert line.endswith(f"  task.created  {task.id}  summarization")


async def test_events_follow_keeps_waiting_longer_than_the_timeout(
    redis: Redis, redis_url: str
) -> None:
    follower = await _start_cli(
        "--timeout", "0.2", "events", "--follow", "--count", "1", redis_url=redis_url
    )
    await wait_until_reading_events(redis, redis_url)

    # Past the timeout plus one blocking read, so the follower has read again.
    await asyncio.sleep(1.5)
    await append_events(redis, event := an_event("summarization"))

    run = await _finish(follower)
    assert (run.exit_status, run.stderr) == (0, "")
    assert run.stdout.splitlines() == [event_line(event)]


async def test_events_without_follow_stop_at_the_end_of_the_stream(
    redis: Redis, redis_url: str
) -> None:
    first, second = an_event("summarization"), an_event("qa", EventType.TASK_DELETED)
    await append_events(redis, first, second)

    run = await run_cli("events", redis_url=redis_url)

    assert (run.exit_status, run.stderr) == (0, "")
    assert run.stdout.splitlines() == [event_line(first), event_line(second)]


async def test_events_from_an_entry_id_start_after_that_entry(
    redis: Redis, redis_url: str
) -> None:
    events = [an_event(f"task-{index}") for index in range(4)]
    entry_ids = await append_events(redis, *events)

    run = await run_cli(
        "--json", "events", "--from", entry_ids[1], "--count", "1", redis_url=redis_url
    )

    assert run.exit_status == 0
    assert [json.loads(line) for line in run.stdout.splitlines()] == [
        json.loads(events[2].model_dump_json())
    ]


async def test_an_unreadable_event_entry_is_skipped_with_a_warning(
    redis: Redis, redis_url: str
) -> None:
    event = an_event("summarization")
    broken_id = (await redis.xadd(EVENTS_STREAM, {DATA_FIELD: "not json"})).decode()
    await append_events(redis, event)

    run = await run_cli("events", redis_url=redis_url)

    assert run.exit_status == 0
    assert run.stdout.splitlines() == [event_line(event)]
    assert run.stderr_lines == [
        f"tasks: skipped entry {broken_id}: its data is not a task event"
    ]


async def test_unprintable_characters_are_shown_escaped_on_one_line(
    client: TaskClient, redis_url: str
) -> None:
    # U+202E reverses the text after it on screen; descriptions may hold it (emoji
    # sequences need format characters), so the CLI must not print it raw.
    task = await client.create("reversed", ["hf://t5-small"], "one\ntwo\u202eowt")

    fetched = await run_cli("get", str(task.id), redis_url=redis_url)

    assert "\u202e" not in fetched.stdout
    assert "description: one\\ntwo\\u202eowt" in fetched.stdout.splitlines()


async def test_help_lists_the_exit_statuses() -> None:
    run = await run_cli("--help")

    assert run.exit_status == 0
    assert "exit status:" in run.stdout
    for status in ("0", "1", "2", "3"):
        assert f"\n  {status}  " in run.stdout


async def test_a_create_without_a_model_is_a_usage_error() -> None:
    run = await run_cli("create", "summarization")

    assert (run.exit_status, run.stdout) == (2, "")
    assert "the following arguments are required: -m/--model" in run.stderr


async def test_a_timeout_that_is_not_positive_is_a_usage_error() -> None:
    run = await run_cli("--timeout", "0", "list")

    assert run.exit_status == 2
    assert "argument --timeout" in run.stderr


async def _wait_for_dead_letters(redis: Redis, count: int) -> None:
    async with asyncio.timeout(5):
        # Dead letters are written with the reply; poll until they are there.
        while await redis.xlen(DEAD_LETTER_STREAM) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_dead_letters_list_shows_where_an_entry_came_from_and_why(
    client: TaskClient, redis: Redis, redis_url: str
) -> None:
    entry_id = await redis.xadd("task.create", {"data": "{oops"})
    await _wait_for_dead_letters(redis, 1)

    readable = await run_cli("dead-letters", "list", redis_url=redis_url)
    as_json = await run_cli("--json", "dead-letters", "list", redis_url=redis_url)

    assert readable.exit_status == 0, readable.stderr
    (line,) = readable.stdout.splitlines()
    assert "task.create" in line and "malformed" in line and "deliveries=1" in line
    (document,) = [json.loads(row) for row in as_json.stdout.splitlines()]
    ((letter_id, _),) = await redis.xrange(DEAD_LETTER_STREAM)
    assert document["id"] == letter_id.decode()
    assert document["stream"] == "task.create"
    assert document["entry_id"] == entry_id.decode()
    assert document["code"] == "malformed"
    assert document["fields"] == {"data": "{oops"}


async def test_dead_letters_replay_republishes_the_original_fields_once(
    client: TaskClient, redis: Redis, redis_url: str
) -> None:
    # A create that was dead-lettered after too many deliveries, now worth a retry.
    body = json.dumps({"name": "second-chance", "models": ["hf://t5-small"]})
    letter_id = await redis.xadd(
        DEAD_LETTER_STREAM,
        {
            "data": body,
            "dead_letter.stream": "task.create",
            "dead_letter.code": "internal",
            "dead_letter.delivery_count": "6",
        },
    )

    replayed = await run_cli(
        "dead-letters", "replay", letter_id.decode(), redis_url=redis_url
    )
    again = await run_cli(
        "dead-letters", "replay", letter_id.decode(), redis_url=redis_url
    )

    assert replayed.exit_status == 0, replayed.stderr
    assert replayed.stdout.startswith("task.create ")
    assert again.exit_status == 1
    assert "not_found" in again.stderr
    async with asyncio.timeout(5):
        while not (await client.list()).items:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    assert [task.name for task in (await client.list()).items] == ["second-chance"]
    assert await redis.xlen(DEAD_LETTER_STREAM) == 0


async def add_dead_letters(redis: Redis, count: int) -> list[str]:
    """Dead letters as the worker writes them for malformed creates; their ids."""
    entry_ids = []
    for n in range(count):
        entry_id = await redis.xadd(
            DEAD_LETTER_STREAM,
            {
                "data": f"{{oops {n}",
                "dead_letter.stream": "task.create",
                "dead_letter.code": "malformed",
                "dead_letter.delivery_count": "1",
            },
        )
        entry_ids.append(entry_id.decode())
    return entry_ids


async def test_dead_letters_list_says_how_many_it_left_out(
    redis: Redis, redis_url: str
) -> None:
    entry_ids = await add_dead_letters(redis, 5)

    run = await run_cli("dead-letters", "list", "--count", "3", redis_url=redis_url)

    assert run.exit_status == 0
    assert [line.split()[0] for line in run.stdout.splitlines()] == entry_ids[:3]
    assert run.stderr_lines == [
        "tasks: showing the oldest 3 of 5 dead letters; "
        "--count N shows more, --newest the newest first"
    ]


async def test_dead_letters_list_newest_shows_the_last_ones_first(
    redis: Redis, redis_url: str
) -> None:
    entry_ids = await add_dead_letters(redis, 5)

    run = await run_cli(
        "--json", "dead-letters", "list", "--newest", "--count", "2",
        redis_url=redis_url,
    )  # fmt: skip

    assert run.exit_status == 0
    assert [json.loads(line)["id"] for line in run.stdout.splitlines()] == [
        entry_ids[4],
        entry_ids[3],
    ]
    assert run.stderr_lines == [
        "tasks: showing the newest 2 of 5 dead letters; --count N shows more"
    ]


async def test_dead_letters_list_of_every_one_adds_no_note(
    redis: Redis, redis_url: str
) -> None:
    entry_ids = await add_dead_letters(redis, 2)

    run = await run_cli("dead-letters", "list", redis_url=redis_url)

    assert (run.exit_status, run.stderr) == (0, "")
    assert [line.split()[0] for line in run.stdout.splitlines()] == entry_ids


async def test_dead_letters_list_says_when_there_are_none(redis_url: str) -> None:
    readable = await run_cli("dead-letters", "list", redis_url=redis_url)
    as_json = await run_cli("--json", "dead-letters", "list", redis_url=redis_url)

    for run in (readable, as_json):
        assert (run.exit_status, run.stdout) == (0, "")
        assert run.stderr_lines == ["tasks: no dead letters"]


async def test_global_options_are_taken_after_the_command_too(
    client: TaskClient, redis_url: str
) -> None:
    run = await run_cli(
        "create", "translation", "-m", "hf://t5-small",
        "--timeout", "2", "--json", "--source", "svc-after",
        redis_url=redis_url,
    )  # fmt: skip

    assert run.exit_status == 0, run.stderr
    printed = Task.model_validate_json(run.stdout)
    assert printed == await client.get(printed.id)
    [created] = (await client.history(printed.id)).items
    assert created.source == "svc-after"


async def test_the_redis_url_is_taken_after_the_command(silent_port: int) -> None:
    url = f"redis://127.0.0.1:{silent_port}/0"

    run = await run_cli("dead-letters", "list", "--redis-url", url, "--timeout", "2")

    [line] = run.stderr_lines
    assert run.exit_status == 3
    assert line.startswith(f"tasks: cannot reach Redis at {url}: ")


async def test_an_option_after_the_command_wins_over_the_one_before(
    redis_url: str,
) -> None:
    # No worker answers: the message names the timeout that was waited for.
    run = await run_cli(
        "--timeout", "5", "list", "--timeout", "0.3", redis_url=redis_url
    )

    [line] = run.stderr_lines
    assert (run.exit_status, run.stdout) == (3, "")
    assert line.startswith("tasks: timeout: no reply on task.query within 0.3s")


async def test_json_after_a_nested_command_is_taken(
    redis: Redis, redis_url: str
) -> None:
    [entry_id] = await add_dead_letters(redis, 1)

    run = await run_cli("dead-letters", "list", "--json", redis_url=redis_url)

    assert run.exit_status == 0
    assert [json.loads(line)["id"] for line in run.stdout.splitlines()] == [entry_id]


async def test_the_database_url_is_taken_before_or_after_the_audit_action(
    database_url: str, redis_url: str
) -> None:
    before = await run_audit(
        "--database-url", database_url, "verify", redis_url=redis_url
    )
    after = await run_audit(
        "verify", "--database-url", database_url, redis_url=redis_url
    )

    assert (before.exit_status, before.stderr) == (0, "")
    assert before.stdout.startswith("chain: whole (0 events checked)\n")
    assert (after.exit_status, after.stdout) == (before.exit_status, before.stdout)


async def test_a_usage_error_is_one_line_naming_the_help_to_read() -> None:
    run = await run_cli("list", "--limit", "many")

    assert (run.exit_status, run.stdout) == (2, "")
    assert run.stderr_lines == [
        "tasks: argument --limit: invalid int value: 'many' (see tasks list --help)"
    ]


@pytest.mark.parametrize("placement", ["before", "after"])
async def test_a_database_url_that_is_not_one_is_a_one_line_usage_error(
    placement: str,
) -> None:
    option = ("--database-url", "garbage")
    arguments = (*option, "verify") if placement == "before" else ("verify", *option)

    run = await run_audit(*arguments)

    [line] = run.stderr_lines
    assert (run.exit_status, run.stdout) == (2, "")
    assert line.startswith("tasks: argument --database-url: not a database URL; ")
    assert "postgresql://" in line


async def test_audit_reads_a_sqlite_url_without_a_driver(
    database_url: str, redis_url: str
) -> None:
    plain = database_url.replace("sqlite+aiosqlite://", "sqlite://")

    run = await run_audit("reconcile", "--database-url", plain)

    assert (run.exit_status, run.stderr) == (0, "")
    assert run.stdout.startswith("reconcile: whole")


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
async def test_audit_reads_a_postgresql_url_without_a_driver(
    postgres_schema: str, scheme: str
) -> None:
    plain = f"{scheme}://{postgres_schema.split('://', 1)[1]}"

    run = await run_audit(
        "export", "--database-url", plain, "--since", "2999-01-01T00:00:00Z"
    )

    assert (run.exit_status, run.stdout, run.stderr) == (0, "", "")


@pytest.mark.postgres
async def test_the_worker_migrates_a_postgresql_url_without_a_driver(
    postgres_schema: str, tmp_path: Path
) -> None:
    plain = f"postgresql://{postgres_schema.split('://', 1)[1]}"
    variables = {"TASKS_DATABASE_URL": plain, "TASKS_DATA_DIR": str(tmp_path)}

    run = await run_cli("migrate", module=WORKER_MODULE, variables=variables)

    assert run.exit_status == 0, run.stderr
    assert "database schema up to date database=postgresql+asyncpg://" in run.stderr


async def test_a_password_in_the_database_url_is_hidden(silent_port: int) -> None:
    url = f"postgresql://auditor:s3cret@127.0.0.1:{silent_port}/tasks"

    run = await run_audit("reconcile", "--database-url", url)

    [line] = run.stderr_lines
    shown = f"postgresql+asyncpg://auditor:***@127.0.0.1:{silent_port}/tasks"
    assert run.exit_status == 3
    assert line.startswith(f"tasks: cannot read the audit log at {shown}: ")
    assert "s3cret" not in run.stderr


@pytest.mark.parametrize("option", ["--since", "--until"])
async def test_an_export_time_without_a_utc_offset_is_a_usage_error(
    database_url: str, option: str
) -> None:
    run = await run_audit(
        "export", "--database-url", database_url, option, "2026-12-04T00:00:00"
    )

    [line] = run.stderr_lines
    assert (run.exit_status, run.stdout) == (2, "")
    assert line.startswith(
        f"tasks: argument {option}: the time '2026-12-04T00:00:00' needs a UTC "
        "offset, such as +00:00 or Z"
    )


async def test_an_export_between_times_with_offsets_writes_those_events(
    summarization: Task, database_url: str
) -> None:
    run = await run_audit(
        "export", "--database-url", database_url,
        "--since", "2000-01-01T00:00:00Z", "--until", "2999-01-01T00:00:00+00:00",
    )  # fmt: skip

    assert (run.exit_status, run.stderr) == (0, "")
    [event] = [TaskEvent.model_validate_json(line) for line in run.stdout.splitlines()]
    assert event.task_id == summarization.id


async def test_an_export_to_a_folder_that_does_not_exist_is_a_usage_error(
    database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "missing" / "events.jsonl"

    run = await run_audit(
        "export", "--database-url", database_url, "--output", str(path)
    )

    assert (run.exit_status, run.stdout) == (2, "")
    assert run.stderr_lines == [
        f"tasks: cannot write {path}: No such file or directory"
    ]


def _limit_file_size() -> None:
    """In the child: a write that would take a file past 16 KiB fails."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))


async def test_an_export_that_cannot_finish_its_file_leaves_none_behind(
    client: TaskClient, database_url: str, tmp_path: Path
) -> None:
    # About 70 KiB of events, beyond what the file may grow to.
    for n in range(100):
        await client.create(f"task-{n}", ["hf://t5-small"])
    path = tmp_path / "events.jsonl"

    run = await run_audit(
        "export", "--database-url", database_url, "--output", str(path),
        preexec_fn=_limit_file_size,
    )  # fmt: skip

    assert run.exit_status == 2
    assert run.stderr_lines == [f"tasks: cannot write {path}: File too large"]
    assert not path.exists()


async def test_an_audit_of_a_sqlite_file_that_does_not_exist_makes_none(
    tmp_path: Path,
) -> None:
    path = tmp_path / "missing.db"

    run = await run_audit("reconcile", "--database-url", f"sqlite:///{path}")

    assert (run.exit_status, run.stdout) == (3, "")
    assert run.stderr_lines == [
        f"tasks: cannot read the audit log at sqlite+aiosqlite:///{path}: "
        "the database does not exist (run `tasks-worker migrate`)"
    ]
    assert not path.exists()


async def test_an_audit_of_a_database_without_the_schema_says_to_migrate(
    tmp_path: Path,
) -> None:
    path = tmp_path / "other.db"
    path.touch()

    run = await run_audit("export", "--database-url", f"sqlite:///{path}")

    [line] = run.stderr_lines
    assert (run.exit_status, run.stdout) == (3, "")
    assert line.endswith(": it has no tasks-worker schema (run `tasks-worker migrate`)")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "TASKS_BATCH_SIZE",
            "0",
            "invalid TASKS_BATCH_SIZE='0': "
            "must be a whole number at least 1 and at most 10000",
        ),
        (
            "TASKS_LOG_LEVEL",
            "bogus",
            "invalid TASKS_LOG_LEVEL='bogus': "
            "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
        ),
        (
            "TASKS_REDIS_URL",
            "garbage",
            "invalid TASKS_REDIS_URL: not a Redis URL: ",
        ),
    ],
)
async def test_an_invalid_worker_setting_is_named_before_anything_starts(
    redis_url: str, tmp_path: Path, variable: str, value: str, message: str
) -> None:
    data_dir = tmp_path / "data"
    variables = {
        "TASKS_REDIS_URL": redis_url,
        "TASKS_EMBEDDED_REDIS": "false",
        "TASKS_DATA_DIR": str(data_dir),
        variable: value,
    }

    run = await run_cli("run", module=WORKER_MODULE, variables=variables)

    [line] = run.stderr_lines
    assert (run.exit_status, run.stdout) == (2, "")
    assert line.startswith(f"tasks-worker: {message}")
    # Nothing migrated: the SQLite file would be in the data folder.
    assert not data_dir.exists()


async def test_an_audit_names_an_invalid_worker_setting_as_a_usage_error(
    database_url: str, redis_url: str
) -> None:
    variables = {"TASKS_BATCH_SIZE": "0"}

    run = await run_audit(
        "verify", "--database-url", database_url,
        redis_url=redis_url, variables=variables,
    )  # fmt: skip

    [line] = run.stderr_lines
    assert (run.exit_status, run.stdout) == (2, "")
    assert line.startswith("tasks: invalid TASKS_BATCH_SIZE='0': must be ")
