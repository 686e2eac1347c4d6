"""The systems under test as child processes, and their memory read from /proc."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_S = 30.0
SAMPLE_INTERVAL_S = 0.1


class ProcessFailed(RuntimeError):
    """A system under test would not start, or died while it was measured."""


def child_environment(variables: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any TASKS_* variable, plus `variables`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("TASKS_")
    }
    env.update(variables)
    return env


class ServerProcess:
    """`python -m <module> ...` with its output in a log file, ready on a log line."""

    def __init__(
        self,
        arguments: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        ready_line: str,
    ) -> None:
        self.module = arguments[0]
        self.arguments = [sys.executable, "-m", *arguments]
        self.env = dict(env)
        self.log_path = log_path
        self.ready_line = ready_line
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        return self._running().pid

    async def start(self, ready_timeout_s: float) -> None:
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self.arguments,
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            await self._until_ready(ready_timeout_s)
        except BaseException:
            await self.kill()
            raise

    async def _until_ready(self, timeout_s: float) -> None:
        process = self._running()
        deadline = time.monotonic() + timeout_s
        while self.ready_line not in self.log():
            if process.returncode is not None or time.monotonic() > deadline:
                raise ProcessFailed(f"{self.module} did not start:\n{self.tail()}")
            await asyncio.sleep(0.05)

    def check_alive(self) -> None:
        if self._running().returncode is not None:
            raise ProcessFailed(f"{self.module} died:\n{self.tail()}")

    async def stop(self) -> int:
        """SIGTERM, then SIGKILL when it has not exited after `STOP_TIMEOUT_S`."""
        process = self._running()
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            await self.kill()
            return await process.wait()

    async def kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def _running(self) -> asyncio.subprocess.Process:
        if self._process is None:
            raise RuntimeError("start the process first")
        return self._process


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and all its threads so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = stat.rpartition(")")[2].split()
    user_ticks, system_ticks = int(fields[11]), int(fields[12])
    return (user_ticks + system_ticks) / os.sysconf("SC_CLK_TCK")


def memory_kb(pid: int, field_name: str) -> int | None:
    """A `Vm*` line of /proc/PID/status in kB (VmRSS now, VmHWM the peak so far)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    return None


@dataclass
class ResourceWatch:
    """Samples a process's resident size, notes it at checkpoints, reads its CPU."""

    pid: int
    samples_kb: list[int] = field(default_factory=list)
    checkpoints_kb: dict[str, int] = field(default_factory=dict)
    peak_kb: int = 0
    _sampler: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._sampler = asyncio.create_task(self._sample_forever())

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def checkpoint(self, name: str) -> None:
        rss_kb = memory_kb(self.pid, "VmRSS")
        if rss_kb is not None:
            self.checkpoints_kb[name] = rss_kb

    async def finish(self) -> None:
        """Stop sampling and read the kernel's high-water mark; call before stopping."""
        self.peak_kb = max(memory_kb(self.pid, "VmHWM") or 0, *self.samples_kb, 0)
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler

    async def _sample_forever(self) -> None:
        while True:
            rss_kb = memory_kb(self.pid, "VmRSS")
            if rss_kb is not None:
                self.samples_kb.append(rss_kb)
            await asyncio.sleep(SAMPLE_INTERVAL_S)
