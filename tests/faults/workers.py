"""`python -m worker.cli run` as child processes to kill, pause and resume."""

import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "worker ready"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 25.0

_CLAIMED = re.compile(r"claimed abandoned entries count=(\d+)")
_FINISHED_OWN = re.compile(r"finished own pending entries count=(\d+)")


class FaultWorker:
    """One worker process under one consumer name; each start writes a new log."""

    def __init__(self, consumer: str, env: Mapping[str, str], log_dir: Path) -> None:
        self.consumer = consumer
        self.env = dict(env)
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.log_paths: list[Path] = []

    @property
    def pid(self) -> int:
        assert self.process is not None, "the worker was never started"
        return self.process.pid

    def start(self) -> None:
        """Start and wait for the `worker ready` line."""
        log_path = self.log_dir / f"worker-{self.consumer}-{len(self.log_paths)}.log"
        self.log_paths.append(log_path)
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker.cli", "run"],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while READY_LINE not in log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(
                    f"worker {self.consumer} did not start:\n{self.tail(log_path)}"
                )
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, whatever is in flight stays pending."""
        self._signal(signal.SIGKILL)
        self._reap(STOP_TIMEOUT_S)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self) -> int | None:
        """SIGTERM and wait for a graceful exit; kill if it takes too long."""
        if not self.is_running():
            return None if self.process is None else self.process.returncode
        self.resume()
        self._signal(signal.SIGTERM)
        return self._reap(STOP_TIMEOUT_S)

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def logs(self) -> str:
        return "".join(path.read_text(errors="replace") for path in self.log_paths)

    def claimed_count(self) -> int:
        """Entries this consumer took over from others, as its logs report them."""
        return sum(int(count) for count in _CLAIMED.findall(self.logs()))

    def finished_own_count(self) -> int:
        """Entries it finished after a restart under the same consumer name."""
        return sum(int(count) for count in _FINISHED_OWN.findall(self.logs()))

    def tail(self, log_path: Path | None = None, lines: int = 40) -> str:
        path = log_path or self.log_paths[-1]
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _signal(self, signum: signal.Signals) -> None:
        if self.is_running():
            assert self.process is not None
            self.process.send_signal(signum)

    def _reap(self, timeout_s: float) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
