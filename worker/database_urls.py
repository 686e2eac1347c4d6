"""Database URLs as people write them, made into the async drivers the worker uses.

The worker's settings and `tasks audit --database-url` both read URLs through
here, so that `postgresql://...` means the same to each of them.
"""

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# SQLAlchemy's plain `postgresql://` and `sqlite://` pick synchronous drivers that
# this project neither installs nor can use with its asyncio engines.
_ASYNC_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}
ACCEPTED_FORMS = (
    "postgresql://USER:PASSWORD@HOST/DB (also postgres://, postgresql+asyncpg://) "
    "or sqlite:///PATH (also sqlite+aiosqlite://)"
)


def async_database_url(text: str) -> str:
    """`text` naming the async driver of its database; ValueError if none fits.

    The messages leave `text` out: it may hold a password.
    """
    try:
        url = make_url(text)
    except ArgumentError:
        raise ValueError(f"not a database URL; expected {ACCEPTED_FORMS}") from None
    driver = _ASYNC_DRIVERS.get(url.drivername)
    if driver is None:
        raise ValueError(
            f"unsupported database {url.drivername}://; expected {ACCEPTED_FORMS}"
        )
    return url.set(drivername=driver).render_as_string(hide_password=False)


def database_url_for_logs(text: str) -> str:
    """`text` with its password shown as `***`."""
    return make_url(text).render_as_string(hide_password=True)


def sqlite_file(text: str) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory ones."""
    url = make_url(text)
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    # `file:` names with `uri=true` are SQLite's own URIs, not plain paths.
    if url.query.get("uri") or database.startswith("file:"):
        return None
    return Path(database)
