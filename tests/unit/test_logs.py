"""Log lines a person on call reads during an outage."""

import logging
import sys

from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from worker.logs import TerseWhileRedisIsDown
from worker.repository.database import brief


class LockNotAvailable(Exception):
    """Stands for the driver's exception, which SQLAlchemy wraps."""


def failed_read(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "worker.broker", logging.ERROR, __file__, 1, "Message fetch error", (), exc_info
    )


def test_a_read_failing_while_redis_is_down_is_one_line() -> None:
    record = failed_read(RedisConnectionError("Error 111 connecting to 127.0.0.1:6379"))

    TerseWhileRedisIsDown().filter(record)

    formatted = logging.Formatter("%(message)s").format(record)
    assert formatted == (
        "Message fetch error: redis unreachable "
        "(Error 111 connecting to 127.0.0.1:6379)"
    )


def test_other_failures_keep_their_traceback() -> None:
    record = failed_read(KeyError("data"))

    TerseWhileRedisIsDown().filter(record)

    formatted = logging.Formatter("%(message)s").format(record)
    assert formatted.startswith("Message fetch error\nTraceback")
    assert "KeyError: 'data'" in formatted


def test_a_database_error_is_told_without_its_sql_or_values() -> None:
    error = OperationalError(
        "INSERT INTO tasks (name) VALUES ($1)",
        {"name": "confidential-task"},
        LockNotAvailable("canceling statement due to lock timeout\nDETAIL: ..."),
    )

    told = brief(error)

    assert told == "LockNotAvailable: canceling statement due to lock timeout"
