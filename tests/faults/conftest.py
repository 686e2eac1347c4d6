"""Fixtures of the fault harness: servers of its own, never the shared ones.

Each test gets a Redis server on a free port in a directory of its own, and a
database: a SQLite file, or a fresh database in a PostgreSQL cluster that this
session made with Debian's binaries. Everything started is ended at teardown,
failure or not, and every directory made is removed.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from tests.faults.harness import Rig
from tests.faults.servers import (
    PostgresCluster,
    RedisServer,
    free_port,
    postgres_bin_dir,
)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql")
    cluster = PostgresCluster(bin_dir, PostgresCluster.make_root(), free_port())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def workdir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A temporary directory, removed at teardown; FAULTS_KEEP_LOGS=DIR keeps logs."""
    path = Path(tempfile.mkdtemp(prefix="tasks-faults-"))
    yield path
    keep = os.environ.get("FAULTS_KEEP_LOGS")
    if keep:
        kept = Path(keep) / request.node.name
        kept.mkdir(parents=True, exist_ok=True)
        for log in path.rglob("*.log"):
            shutil.copy(log, kept / log.name)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fault_redis(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir / "redis", free_port())
    try:
        server.start()
        yield server
    finally:
        server.kill()


@pytest.fixture
def fault_database(request: pytest.FixtureRequest, workdir: Path) -> Iterator[str]:
    """A database URL; parametrize indirectly with "sqlite" (default "postgres")."""
    backend = getattr(request, "param", "postgres")
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'tasks.db'}"
        return

    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    if not cluster.is_running():
        cluster.start()  # a scenario that stopped it failed before starting it
    name = f"faults_{uuid4().hex[:10]}"
    cluster.create_database(name)
    yield cluster.url(name)
    if not cluster.is_running():
        cluster.start()
    cluster.drop_database(name)


@pytest.fixture
def rig(
    request: pytest.FixtureRequest,
    fault_redis: RedisServer,
    fault_database: str,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Rig]:
    postgres = (
        request.getfixturevalue("postgres_cluster")
        if fault_database.startswith("postgresql")
        else None
    )

    def report(line: str) -> None:
        with capsys.disabled():
            print(f"\n{line}")

    made = Rig(
        scenario=request.node.name.removeprefix("test_"),
        redis=fault_redis,
        database_url=fault_database,
        workdir=workdir,
        postgres=postgres,
        report=report,
    )
    try:
        yield made
    finally:
        made.stop_all()
