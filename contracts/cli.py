"""`tasks`: the task registry from a shell, for people and for scripts.

Commands go through `TaskClient`; `events` reads stream `task.events` directly.
"""

import argparse
import asyncio
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, cast

import orjson
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT, FieldT

from contracts.client import DEFAULT_TIMEOUT_S, TaskClient
from contracts.dead_letters import DeadLetter
from contracts.errors import RequestTimeout, TaskRequestError
from contracts.events import TaskEvent
from contracts.replies import DeletedTask, ModelList, Task, TaskPage
from contracts.streams import DATA_FIELD, DEAD_LETTER_STREAM, EVENTS_STREAM
from contracts.urls import hide_password

PROG = "tasks"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_URL_VARIABLE = "TASKS_REDIS_URL"
SOURCE_VARIABLE = "TASKS_SOURCE"
DEFAULT_SOURCE = "tasks-cli"

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130

EPILOG = f"""\
exit status:
  {EXIT_OK}  done
  {EXIT_REFUSED}  the worker refused the request (not_found, validation_error, ...)
     (audit verify, reconcile: the record is not whole)
  {EXIT_USAGE}  usage error
  {EXIT_UNAVAILABLE}  no reply in time, or Redis cannot be reached
     (audit: or the database cannot be read)

The Redis URL defaults to ${REDIS_URL_VARIABLE}, else {DEFAULT_REDIS_URL}."""

# Entries per XRANGE: enough to drain a backlog in few round trips, few enough
# that `--count` never reads far past what it prints.
EVENTS_PAGE = 100
FIRST_ENTRY_ID = "0-0"
ENTRY_ID_PATTERN = re.compile(r"\d+(-\d+)?")
DEAD_LETTERS_SHOWN = 100
# A bounded wait, so that a follower notices a closed connection within seconds.
FOLLOW_WAIT_S = 1.0

TABLE_HEADER = ("ID", "NAME", "MODELS", "CREATED")
MODELS_COLUMN = TABLE_HEADER.index("MODELS")


AddCommands = Callable[[Any], None]


def main(
    argv: Sequence[str] | None = None, more_commands: AddCommands | None = None
) -> int:
    """Run one `tasks` command line; returns the exit status.

    `more_commands` adds subcommands (the worker adds `audit`); a command may
    return an exit status of its own.
    """
    arguments = _parser(more_commands).parse_args(argv)
    # The outcome is reported once, below; the client's retry warnings would only
    # add lines that scripts reading stderr do not expect.
    logging.basicConfig(level=logging.ERROR, format=f"{PROG}: %(name)s: %(message)s")

    try:
        status = asyncio.run(arguments.command(arguments))
    except TaskRequestError as refusal:
        return _fail(EXIT_REFUSED, f"{refusal.code}: {_refusal_text(refusal)}")
    except RequestTimeout as error:
        return _fail(EXIT_UNAVAILABLE, f"timeout: {error}")
    except BrokenPipeError:
        return _reader_went_away()
    except (RedisConnectionError, RedisTimeoutError, OSError) as error:
        shown_url = hide_password(arguments.redis_url)
        return _fail(EXIT_UNAVAILABLE, f"cannot reach Redis at {shown_url}: {error}")
    except RedisError as error:
        shown_url = hide_password(arguments.redis_url)
        return _fail(EXIT_UNAVAILABLE, f"Redis at {shown_url} failed: {error}")
    except LookupError as error:
        return _fail(EXIT_REFUSED, f"not_found: {error}")
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return int(status or EXIT_OK)


class _Parser(argparse.ArgumentParser):
    """Reports a usage error in one line, as every other error, and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: {message} (see {self.prog} --help)\n")


def _parser(more_commands: AddCommands | None = None) -> argparse.ArgumentParser:
    # Typed as its base, so that subcommands are plain parsers to their helpers.
    parser: argparse.ArgumentParser = _Parser(
        prog=PROG,
        description="Create, read and delete tasks held by the tasks worker.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_global_options(parser, after_command=False)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    _add_commands(commands)
    if more_commands is not None:
        more_commands(commands)
    return parser


def add_command(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
    name: str,
    **options: Any,
) -> argparse.ArgumentParser:
    """A subcommand that also takes the global options, after its name."""
    return commands.add_parser(
        name, parents=[_global_options_after_command()], **options
    )


def _global_options_after_command() -> argparse.ArgumentParser:
    # Left out, an option must not reset what was given before the command: the
    # subcommand's values are copied over the main parser's, defaults included.
    options = argparse.ArgumentParser(add_help=False)
    _add_global_options(options, after_command=True)
    return options


def _add_global_options(
    parser: argparse.ArgumentParser, *, after_command: bool
) -> None:
    def default(value: object) -> object:
        return argparse.SUPPRESS if after_command else value

    parser.add_argument(
        "--redis-url",
        type=_redis_url,
        metavar="URL",
        default=default(os.environ.get(REDIS_URL_VARIABLE, DEFAULT_REDIS_URL)),
        help=f"the worker's Redis (default: ${REDIS_URL_VARIABLE} or localhost)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=default(DEFAULT_TIMEOUT_S),
        metavar="SECONDS",
        help="how long to wait for Redis and for each reply "
        f"(default: {DEFAULT_TIMEOUT_S})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print results as JSON (events: one JSON object per line)",
    )
    parser.add_argument(
        "--source",
        default=default(os.environ.get(SOURCE_VARIABLE, DEFAULT_SOURCE)),
        metavar="NAME",
        help="who is asking, as recorded in the audit log "
        f"(default: ${SOURCE_VARIABLE} or {DEFAULT_SOURCE})",
    )


def _add_commands(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> None:
    create = add_command(commands, "create", help="register a task")
    create.add_argument("name", metavar="NAME", help="a name no other task has")
    create.add_argument(
        "-m",
        "--model",
        dest="models",
        action="append",
        required=True,
        metavar="URI",
        help="a model URI such as hf://facebook/bart-large-cnn; repeat for more",
    )
    create.add_argument("--description", default="", metavar="TEXT")
    create.set_defaults(command=_create)

    get = add_command(commands, "get", help="show one task")
    get.add_argument("id", metavar="ID", help="the task's id")
    get.set_defaults(command=_get)

    listing = add_command(commands, "list", help="show a page of tasks, oldest first")
    listing.add_argument(
        "--skip", type=int, default=0, metavar="N", help="leave out the first N"
    )
    listing.add_argument(
        "--limit", type=int, default=100, metavar="N", help="show at most N"
    )
    listing.set_defaults(command=_list)

    models = add_command(commands, "models", help="show the model URIs of a task")
    models.add_argument("name", metavar="NAME", help="the task's name")
    models.set_defaults(command=_models)

    delete = add_command(commands, "delete", help="remove a task")
    delete.add_argument("id", metavar="ID", help="the task's id")
    delete.set_defaults(command=_delete)

    history = add_command(
        commands, "history", help="show the audited events of one task, oldest first"
    )
    history.add_argument("id", metavar="ID", help="the task's id")
    history.set_defaults(command=_history)

    _add_events_command(commands)
    _add_dead_letter_commands(commands)


def _add_events_command(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> None:
    events = add_command(
        commands,
        "events",
        help=f"show the changes recorded on stream {EVENTS_STREAM}",
    )
    events.add_argument(
        "--follow",
        action="store_true",
        help="keep waiting for new events",
    )
    events.add_argument(
        "--count",
        type=_positive_int,
        metavar="N",
        help="stop after N events",
    )
    events.add_argument(
        "--from",
        dest="after_id",
        type=_entry_id,
        default=FIRST_ENTRY_ID,
        metavar="ENTRY_ID",
        help="start after this stream entry id (default: the oldest entry)",
    )
    events.set_defaults(command=_events)


def _add_dead_letter_commands(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> None:
    dead_letters = add_command(
        commands,
        "dead-letters",
        help=f"show or replay entries on stream {DEAD_LETTER_STREAM}",
    )
    actions = dead_letters.add_subparsers(required=True, metavar="ACTION")

    listing = add_command(actions, "list", help="show dead letters, oldest first")
    listing.add_argument(
        "--count",
        type=_positive_int,
        default=DEAD_LETTERS_SHOWN,
        metavar="N",
        help=f"show at most N (default: {DEAD_LETTERS_SHOWN})",
    )
    listing.add_argument(
        "--newest",
        action="store_true",
        help="show the newest first, so that --count N shows the last N",
    )
    listing.set_defaults(command=_list_dead_letters)

    replay = add_command(
        actions,
        "replay",
        help="publish a dead letter's original fields again to its stream, then "
        "remove it from the dead letters",
    )
    replay.add_argument("entry_id", type=_entry_id, metavar="ENTRY_ID")
    replay.set_defaults(command=_replay_dead_letter)


def _redis_url(text: str) -> str:
    # The message leaves the URL out: it may hold a password in an unusual place.
    try:
        parse_url(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a Redis URL: {error}") from None
    return text


def _entry_id(text: str) -> str:
    if ENTRY_ID_PATTERN.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(f"not a stream entry id: {text!r}")
    return text


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < seconds < math.inf:
        raise argparse.ArgumentTypeError(f"must be more than 0 and finite, not {text}")
    return seconds


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text}")
    return number


def task_client(arguments: argparse.Namespace) -> TaskClient:
    return TaskClient(
        _redis(arguments), timeout_s=arguments.timeout, source=arguments.source
    )


def _redis(arguments: argparse.Namespace, blocking_s: float = 0.0) -> Redis:
    """A client that gives Redis `--timeout` seconds, beyond any blocking wait."""
    return Redis.from_url(
        arguments.redis_url,
        socket_connect_timeout=arguments.timeout,
        socket_timeout=arguments.timeout + blocking_s,
    )


async def _create(arguments: argparse.Namespace) -> None:
    async with task_client(arguments) as tasks:
        task = await tasks.create(
            arguments.name, arguments.models, arguments.description
        )
    _print_result(arguments, task, format_task(task))


async def _get(arguments: argparse.Namespace) -> None:
    async with task_client(arguments) as tasks:
        task = await tasks.get(arguments.id)
    _print_result(arguments, task, format_task(task))


async def _list(arguments: argparse.Namespace) -> None:
    async with task_client(arguments) as tasks:
        page = await tasks.list(skip=arguments.skip, limit=arguments.limit)
    _print_result(arguments, page, format_page(page))


async def _models(arguments: argparse.Namespace) -> None:
    async with task_client(arguments) as tasks:
        models = await tasks.models(arguments.name)
    _print_result(arguments, models, format_models(models))


async def _delete(arguments: argparse.Namespace) -> None:
    async with task_client(arguments) as tasks:
        deleted = await tasks.delete(arguments.id)
    _print_result(arguments, deleted, format_deleted(deleted))


async def _history(arguments: argparse.Namespace) -> None:
    async with task_client(arguments) as tasks:
        page = await tasks.history(arguments.id)
    if arguments.json:
        for event in page.items:
            print(event.model_dump_json())
    else:
        print("\n".join(format_event(event) for event in page.items))


async def _events(arguments: argparse.Namespace) -> None:
    redis = _redis(arguments, blocking_s=FOLLOW_WAIT_S)
    try:
        await _print_events(redis, arguments)
    finally:
        await redis.aclose()


async def _print_events(redis: Redis, arguments: argparse.Namespace) -> None:
    after_id: str = arguments.after_id
    remaining: int | None = arguments.count
    while remaining is None or remaining > 0:
        page = EVENTS_PAGE if remaining is None else min(remaining, EVENTS_PAGE)
        entries = await redis.xrange(EVENTS_STREAM, min=f"({after_id}", count=page)
        if not entries and not arguments.follow:
            return
        if not entries:
            await _wait_for_event(redis, after_id)
            continue

        for entry_id, fields in entries:
            after_id = _decoded(entry_id)
            _print_event(arguments, after_id, (fields or {}).get(DATA_FIELD.encode()))
        if remaining is not None:
            remaining -= len(entries)


async def _wait_for_event(redis: Redis, after_id: str) -> None:
    """Return once the stream has an entry after `after_id`, or after a while."""
    block_ms = int(FOLLOW_WAIT_S * 1000)
    await redis.xread({EVENTS_STREAM: after_id}, count=1, block=block_ms)


def _print_event(
    arguments: argparse.Namespace, entry_id: str, data: bytes | str | None
) -> None:
    try:
        event = orjson.loads(data or b"")
        parsed = TaskEvent.model_validate(event)
    except (orjson.JSONDecodeError, ValidationError):
        _warn(f"skipped entry {entry_id}: its data is not a task event")
        return
    # JSON output passes the entry on as the worker wrote it, only made one line.
    line = orjson.dumps(event).decode() if arguments.json else format_event(parsed)
    print(line, flush=True)


async def _list_dead_letters(arguments: argparse.Namespace) -> None:
    redis = _redis(arguments)
    try:
        total, response = await _dead_letter_page(
            redis, arguments.count, arguments.newest
        )
    finally:
        await redis.aclose()

    entries = _stream_entries(response)
    for entry_id, fields in entries:
        letter = DeadLetter.from_entry(entry_id, fields)
        print(
            _dead_letter_json(letter) if arguments.json else format_dead_letter(letter)
        )
    _note_dead_letters_left_out(len(entries), total, arguments.newest)


async def _dead_letter_page(
    redis: Redis, count: int, newest: bool
) -> tuple[int, object]:
    """How many dead letters there are, and the first `count` in the order asked."""
    # One transaction, so that the total counts the stream the page comes from.
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xlen(DEAD_LETTER_STREAM)
        if newest:
            pipe.xrevrange(DEAD_LETTER_STREAM, count=count)
        else:
            pipe.xrange(DEAD_LETTER_STREAM, count=count)
        total, response = await pipe.execute()
    return int(total), response


def _note_dead_letters_left_out(shown: int, total: int, newest: bool) -> None:
    # On stderr: stdout stays one dead letter per line for scripts.
    if total == 0:
        _warn("no dead letters")
    elif shown < total:
        order = "newest" if newest else "oldest"
        hint = "--count N shows more"
        if not newest:
            hint += ", --newest the newest first"
        _warn(f"showing the {order} {shown} of {total} dead letters; {hint}")


async def _replay_dead_letter(arguments: argparse.Namespace) -> None:
    redis = _redis(arguments)
    try:
        new_id = await _replay(redis, arguments.entry_id)
    finally:
        await redis.aclose()
    print(new_id)


async def _replay(redis: Redis, entry_id: str) -> str:
    """Re-publish one dead letter; returns the id of the new entry."""
    response = await redis.xrange(DEAD_LETTER_STREAM, min=entry_id, max=entry_id)
    entries = _stream_entries(response)
    if not entries:
        raise LookupError(f"no dead letter has entry id {entry_id}")
    letter = DeadLetter.from_entry(entry_id, entries[0][1])
    if not letter.stream:
        raise LookupError(f"dead letter {entry_id} does not name its stream")

    # Both or neither: a replayed letter must not stay behind to be replayed twice.
    async with redis.pipeline(transaction=True) as pipe:
        original: dict[FieldT, EncodableT] = {
            name: value for name, value in letter.original.items()
        }
        pipe.xadd(letter.stream, original)
        pipe.xdel(DEAD_LETTER_STREAM, entry_id)
        new_id, _ = await pipe.execute()
    return f"{letter.stream} {_decoded(new_id)}"


def format_dead_letter(letter: DeadLetter) -> str:
    notes = letter.notes
    return "  ".join(
        (
            letter.entry_id,
            notes.get("stream", "?"),
            notes.get("code", "?"),
            f"deliveries={notes.get('delivery_count', '?')}",
            _printable(notes.get("reason", "")),
        )
    )


def _dead_letter_json(letter: DeadLetter) -> str:
    original = {
        name.decode(errors="replace"): value.decode(errors="replace")
        for name, value in letter.original.items()
    }
    # `id` is the dead letter's own entry; `entry_id` the original's, on `stream`.
    document = {"id": letter.entry_id, **letter.notes, "fields": original}
    return orjson.dumps(document).decode()


def _stream_entries(response: object) -> list[tuple[str, dict[bytes, bytes]]]:
    """XRANGE's answer with text ids; redis-py types it more loosely than it is."""
    entries = cast(list[tuple[bytes, dict[bytes, bytes] | None]], response or [])
    return [(_decoded(entry_id), fields or {}) for entry_id, fields in entries]


def _decoded(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _print_result(arguments: argparse.Namespace, result: BaseModel, text: str) -> None:
    print(result.model_dump_json(indent=2) if arguments.json else text)


def format_task(task: Task) -> str:
    """A task as `field: value` lines, the values aligned, one model per line."""
    models = [_printable(uri) for uri in task.models] or ["(none)"]
    fields = {
        "id": str(task.id),
        "name": _printable(task.name),
        "description": _printable(task.description),
        "created_at": task.created_at.isoformat(),
        "models": models[0],
    }
    width = max(len(field) for field in fields) + 2
    lines = [f"{field + ':':<{width}}{value}" for field, value in fields.items()]
    lines += [" " * width + uri for uri in models[1:]]
    return "\n".join(line.rstrip() for line in lines)


def format_page(page: TaskPage) -> str:
    """A page of tasks as a table (id, name, model count, created), then the total."""
    rows = [TABLE_HEADER, *(_table_row(task) for task in page.items)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [_table_line(row, widths) for row in rows]
    lines.append(f"{len(page.items)} shown, {page.total} in total")
    return "\n".join(lines)


def _table_row(task: Task) -> tuple[str, ...]:
    return (
        str(task.id),
        _printable(task.name),
        str(len(task.models)),
        task.created_at.isoformat(timespec="seconds"),
    )


def _table_line(row: Sequence[str], widths: Sequence[int]) -> str:
    cells = [
        cell.rjust(width) if column == MODELS_COLUMN else cell.ljust(width)
        for column, (cell, width) in enumerate(zip(row, widths, strict=True))
    ]
    return "  ".join(cells).rstrip()


def format_models(models: ModelList) -> str:
    """The model URIs, one per line."""
    return "\n".join(_printable(uri) for uri in models.items)


def format_deleted(deleted: DeletedTask) -> str:
    """The sentence confirming a delete."""
    return f"deleted {deleted.id}"


def format_event(event: TaskEvent) -> str:
    """An event as one line: seq, when, what happened, to which task, and why."""
    subject = "-" if event.task_id is None else str(event.task_id)
    if event.task is not None:
        detail = _printable(event.task.name)
    elif event.reason is not None:
        detail = f"{event.reason.code}: {_printable(event.reason.message)}"
    else:
        detail = ""
    source = f"source={_printable(event.source)}" if event.source else ""
    fields = (str(event.seq), event.occurred_at.isoformat(), event.type.value)
    return "  ".join(part for part in (*fields, subject, detail, source) if part)


def _refusal_text(refusal: TaskRequestError) -> str:
    """The worker's message, then each field's problem that it does not repeat."""
    problems = "; ".join(
        f"{problem.field}: {problem.problem}"
        for problem in refusal.details
        if problem.problem not in refusal.message
    )
    return f"{refusal.message} ({problems})" if problems else refusal.message


def _printable(text: str) -> str:
    # Names and URIs come from other people: their control characters must not
    # move the terminal's cursor or split one record over several lines.
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode()
        for char in text
    )


def _fail(exit_status: int, message: str) -> int:
    _warn(" ".join(message.split()))
    return exit_status


def _warn(message: str) -> None:
    print(f"{PROG}: {_printable(message)}", file=sys.stderr)


def _reader_went_away() -> int:
    # Python flushes stdout again at exit; pointing it at /dev/null keeps that
    # flush from failing once more when a pipe such as `| head` has closed.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
