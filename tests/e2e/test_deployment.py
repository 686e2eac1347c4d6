"""docker-compose.yaml as Debian's docker-compose reads it (no Docker engine needed)."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = "docker-compose.yaml"
COMPOSE_DEADLINE_S = 60.0

Service = dict[str, Any]


def run_compose(*arguments: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f docker-compose.yaml ARGUMENTS` from the project root."""
    if shutil.which("docker-compose") is None:
        pytest.fail(
            "docker-compose is not installed: run scripts/ensure-services, "
            "which installs Debian's docker-compose (./dev test does it first)"
        )
    return subprocess.run(
        ["docker-compose", "-f", COMPOSE_FILE, *arguments],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=COMPOSE_DEADLINE_S,
        check=False,
    )


@pytest.fixture(scope="module")
def services() -> dict[str, Service]:
    """The services as `docker-compose config` resolves them."""
    resolved = run_compose("config")
    assert resolved.returncode == 0, resolved.stderr
    configuration = yaml.safe_load(resolved.stdout)
    return dict(configuration["services"])


def option_value(command: list[str], option: str) -> str | None:
    if option not in command:
        return None
    position = command.index(option) + 1
    return command[position] if position < len(command) else None


def replicas(service: Service) -> int:
    scale = service.get("scale")
    if scale is not None:
        return int(scale)
    return int(service.get("deploy", {}).get("replicas", 1))


def test_compose_file_is_valid() -> None:
    validation = run_compose("config", "-q")

    assert validation.returncode == 0, (
        f"docker-compose rejects {COMPOSE_FILE}:\n{validation.stderr}"
    )


def test_redis_is_checked_with_ping_and_keeps_an_append_only_file(
    services: dict[str, Service],
) -> None:
    redis = services["redis"]

    assert redis["image"] == "redis:7"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert option_value(redis["command"], "--appendonly") == "yes"
    assert any(volume.startswith("redis-data:/data") for volume in redis["volumes"])


def test_postgres_is_checked_with_pg_isready_and_keeps_its_data(
    services: dict[str, Service],
) -> None:
    postgres = services["postgres"]

    assert postgres["image"] == "postgres:15"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    environment = postgres["environment"]
    assert environment["POSTGRES_USER"] == "tasks"
    assert environment["POSTGRES_PASSWORD"] == "tasks"
    assert environment["POSTGRES_DB"] == "tasks"
    assert any(
        volume.startswith("postgres-data:/var/lib/postgresql/data")
        for volume in postgres["volumes"]
    )


def test_migrate_runs_once_postgres_is_healthy(services: dict[str, Service]) -> None:
    migrate = services["migrate"]

    assert migrate["command"] == ["migrate"]
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert migrate["build"]["context"] == str(PROJECT_ROOT)


def test_workers_start_after_healthy_servers_and_a_completed_migration(
    services: dict[str, Service],
) -> None:
    worker = services["worker"]

    assert worker["command"] == ["run", "--no-migrate"]
    assert worker["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert worker["image"] == services["migrate"]["image"]
    assert "stop_grace_period" in worker


def test_two_workers_use_the_compose_servers_with_unique_consumer_names(
    services: dict[str, Service],
) -> None:
    worker = services["worker"]
    environment = worker["environment"]

    assert replicas(worker) == 2
    assert environment["TASKS_REDIS_URL"] == "redis://redis:6379/0"
    assert environment["TASKS_DATABASE_URL"] == (
        "postgresql+asyncpg://tasks:tasks@postgres:5432/tasks"
    )
    assert environment["TASKS_EMBEDDED_REDIS"].lower() == "false"
    # Consumer names are hostname-pid: a fixed hostname or name would repeat them.
    assert "TASKS_CONSUMER" not in environment
    assert "hostname" not in worker
    assert "container_name" not in worker
