"""`python -m benchmarks [--quick] [--repeat N] [--output FILE]`."""

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.figures import Results
from benchmarks.loads import FULL, QUICK
from benchmarks.machine import describe
from benchmarks.progress import Progress
from benchmarks.render import (
    markdown_table,
    markdown_targets,
    table_rows,
    text_table,
    text_targets,
)
from benchmarks.runner import Plan, run
from benchmarks.targets import verdicts

FULL_REPETITIONS = 3
EXIT_INTERRUPTED = 130

Facts = list[tuple[str, str]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure the floor, the FastStream peer and the worker side by "
        "side, on Redis database 11 and PostgreSQL database tasks_bench.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one repetition of about a tenth of the loads (a smoke test)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help="repetitions; each figure is their median "
        f"(default {FULL_REPETITIONS}, 1 with --quick)",
    )
    parser.add_argument(
        "--output", type=Path, metavar="FILE", help="also write the report as Markdown"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    repetitions = arguments.repeat or (1 if arguments.quick else FULL_REPETITIONS)
    if repetitions < 1:
        parser.error("--repeat must be 1 or more")
    plan = Plan(QUICK if arguments.quick else FULL, repetitions, arguments.quick)

    try:
        facts, results = asyncio.run(_measure(plan))
    except (KeyboardInterrupt, asyncio.CancelledError):
        # The servers it started were stopped and Redis database 11 flushed on the
        # way out (see `benchmarks.runner.run`); there is nothing to report.
        print("benchmark interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED

    print(_text_report(facts, plan, results))
    if arguments.output is not None:
        arguments.output.write_text(_markdown_report(facts, plan, results))
    return 1 if results.errors else 0


async def _measure(plan: Plan) -> tuple[Facts, Results]:
    # SIGTERM unwinds like Ctrl-C, so that no server started here outlives the run.
    measuring = asyncio.current_task()
    assert measuring is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, measuring.cancel)
    facts = await describe() + plan.settings
    return facts, await run(plan, Progress())


def _text_report(facts: Facts, plan: Plan, results: Results) -> str:
    width = max(len(name) for name, _ in facts)
    lines = [f"{name:<{width}}  {value}" for name, value in facts]
    lines += ["", text_table(table_rows(results, plan.loads)), ""]
    lines += [f"targets ({_medians(plan)}):"]
    lines += [text_targets(verdicts(results))]
    lines += _errors(results)
    return "\n".join(lines)


def _markdown_report(facts: Facts, plan: Plan, results: Results) -> str:
    lines = [f"- {name}: {value}" for name, value in facts]
    lines += ["", markdown_table(table_rows(results, plan.loads)), ""]
    lines += [f"Targets ({_medians(plan)}):", ""]
    lines += [markdown_targets(verdicts(results))]
    lines += _errors(results)
    return "\n".join(lines) + "\n"


def _medians(plan: Plan) -> str:
    if plan.repetitions == 1:
        return "one repetition"
    return f"medians of {plan.repetitions} repetitions"


def _errors(results: Results) -> list[str]:
    if not results.errors:
        return []
    return ["", "errors:", *(f"- {error}" for error in results.errors)]


if __name__ == "__main__":
    sys.exit(main())
