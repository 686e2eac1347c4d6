"""`tasks audit ...`: the auditor's commands, added to the `tasks` command line.

`log` asks the worker over the bus; `verify`, `reconcile` and `export` read the
database (and, for `verify`, the stream) themselves, so that they do not trust the
worker whose record they check.
"""

import argparse
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError
from redis.asyncio import Redis
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import EventType
from contracts import cli as tasks_cli
from worker.audit.export import TextOutput, export_events
from worker.audit.reconcile import reconcile
from worker.audit.verify import Verdict, verify_chain, verify_stream
from worker.database_urls import async_database_url, database_url_for_logs, sqlite_file
from worker.repository.database import create_engine, create_session_factory
from worker.repository.records import Record
from worker.repository.unit_of_work import UnitOfWork
from worker.settings import WorkerSettings, settings_problems

EXIT_NOT_WHOLE = 1
EXIT_USAGE = 2
EXIT_UNREADABLE = 3
MIGRATE_HINT = "run `tasks-worker migrate`"


class DatabaseUnreadable(Exception):
    """The database is not there, or is not a tasks-worker database."""


class CannotWrite(Exception):
    """The export's output file could not be written."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(f"cannot write {path}: {error.strerror or error}")


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
    time_help = "an ISO 8601 time with its UTC offset, e.g. 2026-12-01T00:00:00Z"
    export.add_argument(
        "--since", type=_aware_time, metavar="ISO_TIME", help=f"from; {time_help}"
    )
    export.add_argument(
        "--until", type=_aware_time, metavar="ISO_TIME", help="until, excluded"
    )
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
        type=_database_url,
        default=default,
        metavar="URL",
        help="the worker's database, e.g. postgresql://USER@HOST/DB or "
        "sqlite:///PATH (default: as the worker, from TASKS_* settings)",
    )


def _database_url(text: str) -> str:
    try:
        return async_database_url(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _aware_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    # A time without an offset could mean any zone; the log keeps UTC.
    if moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"the time {text!r} needs a UTC offset, such as +00:00 or Z"
        )
    return moment


AuditCommand = Callable[[argparse.Namespace], Awaitable[int | None]]


def _reading_database(command: AuditCommand) -> AuditCommand:
    """`command` on the database asked for; reports a failure in one line.

    Exit 2 for settings or an output that will not do, exit 3 for a database
    that cannot be read.
    """

    async def run(arguments: argparse.Namespace) -> int | None:
        try:
            arguments.database_url = _chosen_database(arguments)
        except ValidationError as error:
            return _fail(EXIT_USAGE, *settings_problems(error))

        try:
            return await command(arguments)
        except CannotWrite as error:
            return _fail(EXIT_USAGE, str(error))
        except BrokenPipeError:
            # A reader such as `head` that has seen enough: not the database's fault.
            raise
        except (DatabaseUnreadable, SQLAlchemyError, OSError) as error:
            shown = database_url_for_logs(arguments.database_url)
            reason = str(error).splitlines()[0]
            return _fail(
                EXIT_UNREADABLE, f"cannot read the audit log at {shown}: {reason}"
            )

    return run


def _chosen_database(arguments: argparse.Namespace) -> str:
    # Read even when --database-url is given: verify takes the stream's cap from
    # them, and a wrong setting is better named here than raised midway.
    settings = WorkerSettings()
    url: str | None = arguments.database_url
    return url if url is not None else settings.database_url


def _fail(exit_status: int, *lines: str) -> int:
    for line in lines:
        print(f"{tasks_cli.PROG}: {' '.join(line.split())}", file=sys.stderr)
    return exit_status


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
    url: str = arguments.database_url
    # SQLite would make an empty file where the database was expected.
    database_file = sqlite_file(url)
    if database_file is not None and not database_file.exists():
        raise DatabaseUnreadable(f"the database does not exist ({MIGRATE_HINT})")

    engine = create_engine(url)
    try:
        await _require_schema(engine)
        async with UnitOfWork(create_session_factory(engine)) as uow:
            yield uow
    finally:
        await engine.dispose()


async def _require_schema(engine: AsyncEngine) -> None:
    """Raise DatabaseUnreadable unless the database has every table of the worker."""
    async with engine.connect() as connection:
        present = await connection.run_sync(_table_names)
    missing = set(Record.metadata.tables) - present
    if missing == set(Record.metadata.tables):
        raise DatabaseUnreadable(f"it has no tasks-worker schema ({MIGRATE_HINT})")
    if missing:
        raise DatabaseUnreadable(
            f"its tasks-worker schema is out of date ({MIGRATE_HINT})"
        )


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


@asynccontextmanager
async def _output(path: Path | None) -> AsyncIterator[TextOutput]:
    if path is None:
        yield sys.stdout
        return

    output = _FileOutput(path)
    try:
        yield output
        output.close()
    except BaseException:
        output.discard()
        raise


class _FileOutput:
    """The file an export writes; its failures are CannotWrite, not the database's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file: TextIO = path.open("w", encoding="utf-8")
        except OSError as error:
            raise CannotWrite(path, error) from None

    def write(self, text: str, /) -> int:
        try:
            return self._file.write(text)
        except OSError as error:
            raise CannotWrite(self.path, error) from None

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as error:
            raise CannotWrite(self.path, error) from None

    def discard(self) -> None:
        """Remove what was written, so that no partial export passes for a whole one."""
        with suppress(OSError):
            self._file.close()
        # Only a regular file of its own: not a device, a pipe or a link's target.
        if self.path.is_file() and not self.path.is_symlink():
            self.path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
