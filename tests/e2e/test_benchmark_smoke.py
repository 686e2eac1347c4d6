"""`python -m benchmarks --quick` runs end to end and prints its table."""

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = (
    "floor (redis-py loop)",
    "peer (FastStream port, SQLite)",
    "worker (SQLite)",
    "worker (PostgreSQL)",
)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.process
@pytest.mark.timeout(240)
def test_the_quick_benchmark_prints_every_row_and_the_targets(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"

    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--output", str(report)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=220,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = completed.stdout.splitlines()
    for workload in ("create throughput", "get latency p50", "get throughput"):
        for system in SYSTEMS:
            assert any(workload in line and system in line for line in lines), (
                f"no row for {workload} on {system}:\n{completed.stdout}"
            )
    for workload in ("list p50", "peak RSS (VmHWM)"):
        assert any(workload in line and "worker (PostgreSQL)" in line for line in lines)
    assert "targets (one repetition):" in completed.stdout
    assert "| workload | system | median |" in report.read_text()
