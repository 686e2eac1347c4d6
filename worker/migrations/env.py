import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from worker.repository.database import create_engine
from worker.repository.records import Record


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Record.metadata,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _migrate_online() -> None:
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(_migrate)
    await engine.dispose()


asyncio.run(_migrate_online())
