"""How much work each run does, and where the servers it uses live."""

from dataclasses import dataclass

# Loopback only: database 11 of the shared Redis (flushed at start and end), and a
# PostgreSQL database of the benchmark's own, made afresh for every worker run.
REDIS_URL = "redis://127.0.0.1:6379/11"
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/tasks_bench"


@dataclass(frozen=True, slots=True)
class Loads:
    """Request counts of one repetition, and the time bounds around them."""

    creates: int
    peer_creates: int
    get_requests: int
    in_flight_requests: int
    in_flight: int
    list_requests: int
    small_store: int
    large_store: int
    warmup_requests: int
    session_timeout_s: float
    run_timeout_s: float


FULL = Loads(
    creates=20_000,
    peer_creates=20_000,
    get_requests=2_000,
    in_flight_requests=5_000,
    in_flight=64,
    list_requests=300,
    small_store=1_000,
    large_store=100_000,
    warmup_requests=200,
    session_timeout_s=900.0,
    run_timeout_s=3600.0,
)

# About a tenth of the full loads, for a smoke test well under a minute.
QUICK = Loads(
    creates=2_000,
    # The peer commits once per create, about a hundred a second here: a few
    # hundred measure its rate as well and keep the smoke test short.
    peer_creates=300,
    get_requests=200,
    in_flight_requests=500,
    in_flight=64,
    list_requests=30,
    small_store=1_000,
    large_store=10_000,
    warmup_requests=20,
    session_timeout_s=60.0,
    run_timeout_s=150.0,
)


def describe_loads(loads: Loads) -> str:
    return (
        f"{loads.creates:,} creates (peer {loads.peer_creates:,}); gets "
        f"{loads.get_requests:,} one by one and {loads.in_flight_requests:,} at "
        f"{loads.in_flight} in flight; {loads.list_requests:,} lists per store size"
    )
