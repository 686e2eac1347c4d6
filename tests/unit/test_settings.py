"""Worker settings: the URL forms people write, and what an invalid one says."""

import pytest
from pydantic import ValidationError

from worker.database_urls import async_database_url
from worker.settings import WorkerSettings, settings_problems


@pytest.mark.parametrize(
    ("written", "used"),
    [
        ("postgresql://u:pw@db/tasks", "postgresql+asyncpg://u:pw@db/tasks"),
        ("postgres://u:pw@db:5433/tasks", "postgresql+asyncpg://u:pw@db:5433/tasks"),
        ("postgresql+asyncpg://u@db/tasks", "postgresql+asyncpg://u@db/tasks"),
        ("sqlite:///data/tasks.db", "sqlite+aiosqlite:///data/tasks.db"),
        ("sqlite+aiosqlite:////tmp/t.db", "sqlite+aiosqlite:////tmp/t.db"),
    ],
)
def test_database_urls_are_given_their_async_driver(written: str, used: str) -> None:
    assert async_database_url(written) == used
    assert WorkerSettings(database_url=written).database_url == used


def test_the_database_url_for_logs_hides_the_password() -> None:
    settings = WorkerSettings(database_url="postgres://u:s%40cret@db/tasks?ssl=on")

    assert settings.database_url == "postgresql+asyncpg://u:s%40cret@db/tasks?ssl=on"
    assert (
        settings.database_url_for_logs == "postgresql+asyncpg://u:***@db/tasks?ssl=on"
    )


@pytest.mark.parametrize("written", ["garbage", "mysql://u:s3cret@db/tasks"])
def test_an_unusable_database_url_is_named_without_its_password(written: str) -> None:
    with pytest.raises(ValidationError) as raised:
        WorkerSettings(database_url=written)

    [problem] = settings_problems(raised.value)
    assert problem.startswith("invalid TASKS_DATABASE_URL: ")
    assert "postgresql://" in problem
    assert "s3cret" not in problem


def test_the_log_level_is_one_of_the_standard_names_in_any_case() -> None:
    assert WorkerSettings(log_level="debug").log_level == "DEBUG"
    with pytest.raises(ValidationError):
        WorkerSettings(log_level="verbose")


def test_each_invalid_setting_is_one_line() -> None:
    with pytest.raises(ValidationError) as raised:
        WorkerSettings(batch_size=0, claim_interval_s=0, embedded_redis="maybe")

    assert settings_problems(raised.value) == [
        "invalid TASKS_EMBEDDED_REDIS='maybe': must be true or false",
        "invalid TASKS_BATCH_SIZE=0: "
        "must be a whole number at least 1 and at most 10000",
        "invalid TASKS_CLAIM_INTERVAL_S=0: must be a finite number above 0",
    ]


def test_limits_that_the_servers_or_the_logs_impose_are_checked_at_start() -> None:
    with pytest.raises(ValidationError) as raised:
        WorkerSettings(
            lock_timeout_ms=99_999_999_999_999,
            shutdown_timeout_s=float("inf"),
            consumer="a\nb",
        )

    assert settings_problems(raised.value) == [
        "invalid TASKS_CONSUMER='a\\nb': "
        "must be 1 to 200 characters, without spaces or control characters",
        "invalid TASKS_SHUTDOWN_TIMEOUT_S=inf: must be a finite number above 0",
        "invalid TASKS_LOCK_TIMEOUT_MS=99999999999999: "
        "must be a whole number at least 1 and at most 2147483647",
    ]
