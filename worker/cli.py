"""`tasks-worker`: run the worker, migrate its database, print its AsyncAPI page."""

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Sequence

from pydantic import ValidationError

from worker.logs import configure_logging
from worker.migrate import upgrade_to_latest
from worker.repository.database import database_unavailable
from worker.serve import serve
from worker.settings import WorkerSettings, settings_problems
from worker.transport.app import build_app

logger = logging.getLogger("worker.cli")

PROG = "tasks-worker"
MIGRATE_WAIT_S = 120.0
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    settings = _read_settings()
    if settings is None:
        return EXIT_USAGE

    configure_logging(settings.log_level)
    return int(arguments.run_command(arguments, settings))


def _read_settings() -> WorkerSettings | None:
    """The settings, or None once each invalid variable is named on stderr.

    Before anything starts or migrates: a wrong setting must change nothing.
    """
    try:
        return WorkerSettings()
    except ValidationError as error:
        for problem in settings_problems(error):
            print(f"{PROG}: {problem}", file=sys.stderr)
        return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="The tasks registry worker. Configured by TASKS_* variables.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="migrate the database, then consume")
    run.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not touch the schema (when a separate step migrates)",
    )
    run.set_defaults(run_command=_run)

    migrate = commands.add_parser("migrate", help="bring the schema up to date")
    migrate.set_defaults(run_command=_migrate)

    asyncapi = commands.add_parser("asyncapi", help="print the AsyncAPI document")
    asyncapi.set_defaults(run_command=_asyncapi)
    return parser


def _run(arguments: argparse.Namespace, settings: WorkerSettings) -> int:
    if settings.auto_migrate and not arguments.no_migrate:
        _migrate_when_reachable(settings)
    logger.info(
        "starting worker consumer=%s batch_size=%d",
        settings.consumer,
        settings.batch_size,
    )
    return asyncio.run(serve(settings))


def _migrate_when_reachable(settings: WorkerSettings) -> None:
    # A worker may start before its database does (a fresh deployment, a reboot).
    deadline = time.monotonic() + MIGRATE_WAIT_S
    while True:
        try:
            upgrade_to_latest(settings.database_url, settings.database_url_for_logs)
            return
        except Exception as error:
            if not database_unavailable(error) or time.monotonic() > deadline:
                raise
            logger.warning(
                "database unavailable for migration (%s); retrying in 2s", error
            )
            time.sleep(2.0)


def _migrate(_: argparse.Namespace, settings: WorkerSettings) -> int:
    upgrade_to_latest(settings.database_url, settings.database_url_for_logs)
    return 0


def _asyncapi(_: argparse.Namespace, settings: WorkerSettings) -> int:
    sys.stdout.write(asyncapi_document(settings) + "\n")
    return 0


def asyncapi_document(settings: WorkerSettings) -> str:
    """The AsyncAPI document as committed: consumer names vary, so one stands in."""
    documented = settings.model_copy(update={"consumer": "<host>-<pid>"})
    specification = build_app(documented).schema.to_specification()
    return json.dumps(specification.to_jsonable(), indent=2, sort_keys=True)


if __name__ == "__main__":
    sys.exit(main())
