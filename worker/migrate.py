"""Bringing a database's schema up to date with Alembic."""

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser would read `%` in a password as interpolation.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_to_latest(database_url: str, url_for_logs: str) -> None:
    """Apply every migration the database lacks; runs its own event loop."""
    if database_url.startswith("sqlite"):
        _create_sqlite_folder(database_url)
    command.upgrade(alembic_config(database_url), "head")
    logger.info("database schema up to date database=%s", url_for_logs)


def _create_sqlite_folder(database_url: str) -> None:
    path = database_url.split(":///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
