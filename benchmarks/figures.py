"""What is measured: the systems, the workloads, and every repetition's values."""

import statistics
from dataclasses import dataclass, field

from benchmarks.loads import Loads

FLOOR = "floor"
PEER = "peer"
WORKER_SQLITE = "worker-sqlite"
WORKER_POSTGRES = "worker-postgres"
WORKERS = (WORKER_SQLITE, WORKER_POSTGRES)
SYSTEMS = (FLOOR, PEER, *WORKERS)

SYSTEM_LABELS = {
    FLOOR: "floor (redis-py loop)",
    PEER: "peer (FastStream port, SQLite)",
    WORKER_SQLITE: "worker (SQLite)",
    WORKER_POSTGRES: "worker (PostgreSQL)",
}

CREATES = "creates"
GET_P50 = "get_p50"
GET_P99 = "get_p99"
GET_IN_FLIGHT = "get_in_flight"
LIST_SMALL = "list_small"
LIST_LARGE = "list_large"
CPU_PER_CREATE = "cpu_per_create"
CPU_PER_GET = "cpu_per_get"
RSS_PEAK = "rss_peak"
RSS_GROWTH = "rss_growth"

# Resident-size checkpoints: after warm-up, and at the end of the last workload.
WARM = "warm"
END = "end"


@dataclass(frozen=True, slots=True)
class Workload:
    key: str
    label: str
    unit: str


def workloads(loads: Loads) -> list[Workload]:
    """The table's workloads in order; labels name this run's load sizes."""
    one_by_one = f"{loads.get_requests:,} one by one"
    return [
        Workload(CREATES, "create throughput", "/s"),
        Workload(GET_P50, f"get latency p50, {one_by_one}", "ms"),
        Workload(GET_P99, f"get latency p99, {one_by_one}", "ms"),
        Workload(GET_IN_FLIGHT, f"get throughput, {loads.in_flight} in flight", "/s"),
        Workload(CPU_PER_CREATE, "CPU time of the system per create", "us"),
        Workload(CPU_PER_GET, "CPU time of the system per get in flight", "us"),
        Workload(LIST_SMALL, f"list p50, limit 100, {loads.small_store:,} tasks", "ms"),
        Workload(LIST_LARGE, f"list p50, limit 100, {loads.large_store:,} tasks", "ms"),
        Workload(RSS_PEAK, "peak RSS (VmHWM)", "MB"),
        Workload(RSS_GROWTH, "RSS growth, warm-up to end", "MB"),
    ]


@dataclass
class Results:
    """Every repetition's value of every (workload, system), and what failed."""

    values: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    rss_checkpoints_mb: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, system: str, figures: dict[str, float]) -> None:
        for workload, value in figures.items():
            self.values.setdefault((workload, system), []).append(value)

    def add_checkpoints(self, system: str, checkpoints_mb: dict[str, float]) -> None:
        self.rss_checkpoints_mb.setdefault(system, []).append(checkpoints_mb)

    def median(self, workload: str, system: str) -> float | None:
        values = self.values.get((workload, system))
        return statistics.median(values) if values else None

    def ratio(
        self, measured: tuple[str, str], reference: tuple[str, str]
    ) -> float | None:
        """Median of `(workload, system)` over the median of another."""
        value = self.median(*measured)
        base = self.median(*reference)
        if value is None or not base:
            return None
        return value / base
