"""Where the test servers are; CI and `./dev test` start them when they are absent."""

import os

REDIS_URL = os.environ.get("TASKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get(
    "TASKS_TEST_POSTGRES_URL",
    "postgresql+asyncpg://postgres@127.0.0.1:5432/tasks_test",
)
