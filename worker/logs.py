"""Logging for the command line entry points; modules only call getLogger."""

import logging.config


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
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": "plain",
                    "stream": "ext://sys.stderr",
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
