"""`tasks-worker run` as a process: embedded Redis, signals, lost consumer groups."""

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

from redis.asyncio import Redis

from contracts import CREATE_STREAM
from contracts.client import TaskClient
from tests.conftest import WorkerProcess
from worker.embedded_redis import redis_answers

StartProcess = Callable[..., WorkerProcess]


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_with_no_redis_the_worker_starts_the_embedded_one_and_keeps_data(
    worker_process: StartProcess, tmp_path: Path
) -> None:
    redis_url = f"redis://127.0.0.1:{free_loopback_port()}/0"
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}"
    variables = {"TASKS_REDIS_URL": redis_url, "TASKS_DATABASE_URL": database_url}

    first = worker_process(**variables)
    async with TaskClient.from_url(redis_url) as client:
        created = await client.create("summarization", ["hf://facebook/bart-large-cnn"])
    assert "starting the embedded one" in first.log()
    assert first.stop() == 0

    second = worker_process(**variables)
    async with TaskClient.from_url(redis_url) as client:
        fetched = await client.get(created.id)
    assert second.stop() == 0

    assert fetched == created
    assert (tmp_path / "data" / "redis" / "appendonly.aof").exists() or any(
        (tmp_path / "data" / "redis").glob("appendonly*")
    )


async def test_sigterm_stops_the_worker_cleanly(
    worker_process: StartProcess, redis_url: str, tmp_path: Path
) -> None:
    running = worker_process(
        TASKS_REDIS_URL=redis_url,
        TASKS_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}",
    )

    exit_code = running.stop()

    assert exit_code == 0
    assert "SIGTERM: stopping gracefully" in running.log()
    assert "worker stopped" in running.log()


async def test_a_deleted_command_stream_is_recreated_and_served(
    worker_process: StartProcess, redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    running = worker_process(
        TASKS_REDIS_URL=redis_url,
        TASKS_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}",
    )

    await redis.delete(CREATE_STREAM)
    async with TaskClient.from_url(redis_url, timeout_s=10) as client:
        for _ in range(100):
            if "restarting the worker app" in running.log():
                break
            await asyncio.sleep(0.05)
        created = await client.create("after-the-flood", ["hf://t5-small"])

    assert created.name == "after-the-flood"
    assert "restarting the worker app" in running.log()
    assert running.stop() == 0


async def test_the_embedded_redis_goes_when_the_worker_is_killed(
    worker_process: StartProcess, tmp_path: Path
) -> None:
    port = free_loopback_port()
    running = worker_process(
        TASKS_REDIS_URL=f"redis://127.0.0.1:{port}/0",
        TASKS_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}",
    )
    assert await redis_answers(f"redis://127.0.0.1:{port}/0")
    assert running.process is not None

    running.process.kill()
    running.process.wait()

    async with asyncio.timeout(10):
        # The server is another process: there is nothing to await but its port.
        while await redis_answers(  # noqa: ASYNC110
            f"redis://127.0.0.1:{port}/0", timeout_s=0.2
        ):
            await asyncio.sleep(0.1)
