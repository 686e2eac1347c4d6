"""`tasks audit ...`: the auditor's commands, added to the `tasks` command line.

`log` asks the worker over the bus; `verify`, `reconcile` and `export` read the
database (and, for `verify`, the stream) themselves, so that they do not trust the
worker whose record they check.
"""

import argparse
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from redis.asyncio import Redis
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from contracts import EventType
from contracts import cli as tasks_cli
from worker.audit.export import export_events
from worker.audit.reconcile import reconcile
from worker.audit.verify import Verdict, verify_chain, verify_stream
from worker.repository.database import create_engine, create_session_factory
from worker.repository.unit_of_work import UnitOfWork
from worker.settings import WorkerSettings

EXIT_NOT_WHOLE = 1
EXIT_UNREADABLE = 3


def main(argv: Sequence[str] | None = None) -> int:
    """The `tasks` command line, with the `audit` commands."""
    return tasks_cli.main(argv, more_commands=add_audit_commands)


def add_audit_commands(commands: Any) -> None:
    audit = tasks_cli.add_command(
        commands, "audit", help="read and check the audit log"
    )
    _add_database_option(audit, default=None)
    actions = audit.add_subparsers(required=True, metavar="ACTION")

    log = _add_action(actions, "log", "a page of the log, asked of the worker")
    log.add_argument("--after-seq", type=int, default=0, metavar="SEQ")
    log.add_argument("--limit", type=int, default=100, metavar="N")
    log.add_argument("--type", choices=[t.value for t in EventType], default=None)
    log.set_defaults(command=_log)

    verify = _add_action(
        actions, "verify", "recompute the hash chain and compare the stream with it"
    )
    verify.set_defaults(command=_reading_database(_verify))

    replay = _add_action(
        actions, "reconcile", "rebuild the task table from the log and compare"
    )
    replay.set_defaults(command=_reading_database(_reconcile))

    export = _add_action(actions, "export", "write events as JSON Lines")
    export.add_argument("--since", type=datetime.fromisoformat, metavar="ISO_TIME")
    export.add_argument("--until", type=datetime.fromisoformat, metavar="ISO_TIME")
    export.add_argument("--type", choices=[t.value for t in EventType], default=None)
    export.add_argument("--output", type=Path, metavar="FILE", help="default: stdout")
    export.set_defaults(command=_reading_database(_export))


def _add_action(actions: Any, name: str, description: str) -> argparse.ArgumentParser:
    action = tasks_cli.add_command(actions, name, help=description)
    # Given after the action, the option must not be reset by the default before it.
    _add_database_option(action, default=argparse.SUPPRESS)
    return action


def _add_database_option(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--database-url",
        default=default,
        metavar="URL",
        help="the worker's database (default: as the worker, from TASKS_* settings)",
    )


AuditCommand = Callable[[argparse.Namespace], Awaitable[int | None]]


def _reading_database(command: AuditCommand) -> AuditCommand:
    """`command`, reporting a database it cannot read in one line (exit 3)."""

    async def run(arguments: argparse.Namespace) -> int | None:
        try:
            return await command(arguments)
        except (SQLAlchemyError, OSError) as error:
            url = arguments.database_url or WorkerSettings().database_url
            shown = make_url(url).render_as_string(hide_password=True)
            reason = str(error).splitlines()[0]
            print(
                f"tasks: cannot read the audit log at {shown}: {reason}",
                file=sys.stderr,
            )
            return EXIT_UNREADABLE

    return run


async def _log(arguments: argparse.Namespace) -> None:
    async with tasks_cli.task_client(arguments) as tasks:
        page = await tasks.events(arguments.after_seq, arguments.limit, arguments.type)
    for event in page.items:
        line = (
            event.model_dump_json() if arguments.json else tasks_cli.format_event(event)
        )
        print(line)


async def _verify(arguments: argparse.Namespace) -> int:
    redis = Redis.from_url(arguments.redis_url, socket_timeout=arguments.timeout)
    try:
        async with _unit_of_work(arguments) as uow:
            chain = await verify_chain(uow)
            events_maxlen = WorkerSettings().events_maxlen
            stream = await verify_stream(uow, redis, events_maxlen)
    finally:
        await redis.aclose()
    _report("chain", chain, "events")
    _report("stream", stream, "entries")
    return 0 if chain.whole and stream.whole else EXIT_NOT_WHOLE


async def _reconcile(arguments: argparse.Namespace) -> int:
    async with _unit_of_work(arguments) as uow:
        verdict = await reconcile(uow)
    _report("reconcile", verdict, "events")
    return 0 if verdict.whole else EXIT_NOT_WHOLE


async def _export(arguments: argparse.Namespace) -> None:
    event_type = None if arguments.type is None else EventType(arguments.type)
    async with _unit_of_work(arguments) as uow, _output(arguments.output) as out:
        progress = _progress if arguments.output is not None else None
        written = await export_events(
            uow, out, arguments.since, arguments.until, event_type, progress
        )
    if arguments.output is not None:
        print(f"\rexported {written} events to {arguments.output}", file=sys.stderr)


def _progress(written: int) -> None:
    print(f"\rexported {written} events...", end="", file=sys.stderr, flush=True)


def _report(check: str, verdict: Verdict, unit: str) -> None:
    state = "whole" if verdict.whole else "NOT WHOLE"
    print(f"{check}: {state} ({verdict.checked} {unit} checked)")
    for finding in verdict.findings:
        print(f"  {finding}")


@asynccontextmanager
async def _unit_of_work(arguments: argparse.Namespace) -> AsyncIterator[UnitOfWork]:
    url = arguments.database_url or WorkerSettings().database_url
    engine = create_engine(url)
    try:
        async with UnitOfWork(create_session_factory(engine)) as uow:
            yield uow
    finally:
        await engine.dispose()


@asynccontextmanager
async def _output(path: Path | None) -> AsyncIterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    with path.open("w", encoding="utf-8") as out:
        yield out


if __name__ == "__main__":
    sys.exit(main())
