"""The table and the targets, as aligned text for a terminal and as Markdown."""

import statistics
from collections.abc import Sequence

from benchmarks.figures import (
    CPU_PER_CREATE,
    CPU_PER_GET,
    CREATES,
    FLOOR,
    GET_IN_FLIGHT,
    GET_P50,
    GET_P99,
    PEER,
    RSS_PEAK,
    SYSTEM_LABELS,
    SYSTEMS,
    WORKERS,
    Results,
    Workload,
    workloads,
)
from benchmarks.loads import Loads
from benchmarks.targets import Verdict

HEADER = ("workload", "system", "median", "min", "max", "vs floor", "vs peer")
AGAINST_PEER = {CREATES, GET_P50, GET_P99, GET_IN_FLIGHT, CPU_PER_CREATE, CPU_PER_GET}
AGAINST_FLOOR = AGAINST_PEER | {RSS_PEAK}


def table_rows(results: Results, loads: Loads) -> list[tuple[str, ...]]:
    """One row per (workload, system) that has values, in table order."""
    rows = []
    for workload in workloads(loads):
        for system in SYSTEMS:
            values = results.values.get((workload.key, system))
            if values:
                rows.append(_row(results, workload, system, values))
    return rows


def _row(
    results: Results, workload: Workload, system: str, values: Sequence[float]
) -> tuple[str, ...]:
    def versus(against: str) -> str:
        applies = AGAINST_FLOOR if against == FLOOR else AGAINST_PEER
        if system == against or workload.key not in applies:
            return ""
        if against == PEER and system not in WORKERS:
            return ""
        ratio = results.ratio((workload.key, system), (workload.key, against))
        return "" if ratio is None else f"{ratio:.2f}x"

    return (
        workload.label,
        SYSTEM_LABELS[system],
        _number(statistics.median(values), workload.unit),
        _number(min(values), workload.unit),
        _number(max(values), workload.unit),
        versus(FLOOR),
        versus(PEER),
    )


def _number(value: float, unit: str) -> str:
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "us":
        return f"{value:,.0f} us"
    return f"{value:+.1f} {unit}" if value < 0 else f"{value:.1f} {unit}"


def text_table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[column]) for row in (HEADER, *rows)) for column in range(7)]
    numeric = range(2, 7)

    def line(row: tuple[str, ...]) -> str:
        cells = [
            cell.rjust(width) if column in numeric else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(HEADER), rule, *(line(row) for row in rows)])


def markdown_table(rows: Sequence[tuple[str, ...]]) -> str:
    align = ["---", "---", *["---:"] * 5]
    lines = [_markdown_line(HEADER), _markdown_line(tuple(align))]
    return "\n".join(lines + [_markdown_line(row) for row in rows])


def _markdown_line(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def text_targets(verdicts: Sequence[Verdict]) -> str:
    width = max(len(verdict.text) for verdict in verdicts)
    return "\n".join(
        f"{verdict.mark:>12}  {verdict.text:<{width}}  {verdict.measured}"
        for verdict in verdicts
    )


def markdown_targets(verdicts: Sequence[Verdict]) -> str:
    lines = ["| target | result | measured |", "| --- | --- | --- |"]
    lines += [
        _markdown_line((verdict.text, verdict.mark, verdict.measured))
        for verdict in verdicts
    ]
    return "\n".join(lines)
