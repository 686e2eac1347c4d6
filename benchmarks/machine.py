"""A description of the machine and the servers, printed above the table."""

import os
import platform
import subprocess
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from benchmarks.loads import POSTGRES_URL, REDIS_URL


def cpu_model() -> str:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return "unknown"


def memory_total() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def _git(*arguments: str) -> str:
    try:
        completed = subprocess.run(
            ["git", *arguments],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return completed.stdout.strip()


def revision() -> str:
    """The commit measured, and whether tracked files differ from it."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    changed = _git("status", "--porcelain", "--untracked-files=no")
    return f"{commit} with uncommitted changes" if changed else commit


async def describe() -> list[tuple[str, str]]:
    redis = Redis.from_url(REDIS_URL)
    try:
        redis_version = str((await redis.info("server"))["redis_version"])
    finally:
        await redis.aclose()

    admin = make_url(POSTGRES_URL).set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        postgres_version = str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()

    return [
        ("cpus", f"{len(os.sched_getaffinity(0))} x {cpu_model()}"),
        ("memory", memory_total()),
        ("kernel", platform.release()),
        ("python", platform.python_version()),
        ("redis", redis_version),
        ("postgresql", postgres_version),
        ("commit", revision()),
    ]
