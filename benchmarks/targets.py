"""The targets, each evaluated on the medians of one run."""

from dataclasses import dataclass

from benchmarks.figures import (
    CREATES,
    END,
    FLOOR,
    GET_IN_FLIGHT,
    GET_P50,
    GET_P99,
    LIST_LARGE,
    LIST_SMALL,
    PEER,
    RSS_PEAK,
    SYSTEM_LABELS,
    WARM,
    WORKER_POSTGRES,
    WORKER_SQLITE,
    WORKERS,
    Results,
)

PEAK_LIMIT_MB = 200.0
# Growth from after warm-up to the end that still counts as flat: the larger of
# these, since allocator arenas and caches settle in steps, not smoothly.
FLAT_GROWTH_MB = 10.0
FLAT_GROWTH_FRACTION = 0.10


@dataclass(frozen=True, slots=True)
class RatioTarget:
    """`measured / reference` must be at least (or at most) `bound`."""

    text: str
    measured: tuple[str, str]
    reference: tuple[str, str]
    bound: float
    at_least: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    text: str
    measured: str
    met: bool | None

    @property
    def mark(self) -> str:
        return {True: "met", False: "MISSED", None: "not measured"}[self.met]


def ratio_targets() -> list[RatioTarget]:
    found = [
        _versus(WORKER_SQLITE, CREATES, FLOOR, 0.4, "creates >= 0.4x floor"),
        _versus(WORKER_SQLITE, CREATES, PEER, 30.0, "creates >= 30x peer"),
        _versus(WORKER_POSTGRES, CREATES, FLOOR, 0.3, "creates >= 0.3x floor"),
    ]
    for worker in WORKERS:
        label = SYSTEM_LABELS[worker]
        found += [
            _versus(worker, GET_P50, FLOOR, 2.0, "get p50 <= 2x floor", False),
            _versus(worker, GET_P99, FLOOR, 3.0, "get p99 <= 3x floor", False),
            _versus(worker, GET_IN_FLIGHT, FLOOR, 0.5, "get in flight >= 0.5x floor"),
            _versus(
                worker, GET_IN_FLIGHT, PEER, 8.0, "get in flight >= 8x broker.request()"
            ),
            RatioTarget(
                f"{label}: list p50 at the large store <= 1.5x at the small",
                (LIST_LARGE, worker),
                (LIST_SMALL, worker),
                1.5,
                at_least=False,
            ),
        ]
    return found


def _versus(
    system: str,
    workload: str,
    against: str,
    bound: float,
    text: str,
    at_least: bool = True,
) -> RatioTarget:
    return RatioTarget(
        f"{SYSTEM_LABELS[system]}: {text}",
        (workload, system),
        (workload, against),
        bound,
        at_least,
    )


def verdicts(results: Results) -> list[Verdict]:
    found = [_ratio_verdict(results, target) for target in ratio_targets()]
    found += [_memory_verdict(results, worker) for worker in WORKERS]
    return found


def _ratio_verdict(results: Results, target: RatioTarget) -> Verdict:
    ratio = results.ratio(target.measured, target.reference)
    if ratio is None:
        return Verdict(target.text, "not measured", None)
    met = ratio >= target.bound if target.at_least else ratio <= target.bound
    return Verdict(target.text, f"{ratio:.2f}x", met)


def _memory_verdict(results: Results, system: str) -> Verdict:
    text = f"{SYSTEM_LABELS[system]}: memory flat and peak < {PEAK_LIMIT_MB:.0f} MB"
    peaks_mb = results.values.get((RSS_PEAK, system), [])
    runs = results.rss_checkpoints_mb.get(system, [])
    if not peaks_mb or not runs:
        return Verdict(text, "not measured", None)

    peak_mb = max(peaks_mb)

    growths = [run[END] - run[WARM] for run in runs]
    flat = all(
        run[END] - run[WARM] <= max(FLAT_GROWTH_MB, FLAT_GROWTH_FRACTION * run[WARM])
        for run in runs
    )
    measured = (
        f"peak {peak_mb:.0f} MB; growth after warm-up {min(growths):+.1f} to "
        f"{max(growths):+.1f} MB ({'flat' if flat else 'grew'})"
    )
    return Verdict(text, measured, flat and peak_mb < PEAK_LIMIT_MB)
