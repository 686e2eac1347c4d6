"""Logging for the command line entry points; modules only call getLogger."""

import logging
import logging.config

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError)


class TerseWhileRedisIsDown(logging.Filter):
    """One line, not a traceback, for each failed read while Redis is down.

    FastStream logs every failed read with its traceback, every few seconds per
    subscriber; during an outage that buries the lines that say anything new.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, _UNREACHABLE):
            record.msg = f"{record.getMessage()}: redis unreachable ({error})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def configure_logging(level: str) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "plain": {
                    "format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                },
            },
            "filters": {"terse_outages": {"()": TerseWhileRedisIsDown}},
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": "plain",
                    "stream": "ext://sys.stderr",
                    "filters": ["terse_outages"],
                },
            },
            "root": {"level": level.upper(), "handlers": ["stderr"]},
            "loggers": {
                # Alembic logs every migration step at INFO; one summary line is ours.
                "alembic": {"level": "WARNING"},
                # FastStream's per-task supervisor chatter; its errors still show.
                "worker.broker": {"level": _at_least_warning(level)},
            },
        }
    )


def _at_least_warning(level: str) -> str:
    return "DEBUG" if level.upper() == "DEBUG" else "WARNING"
