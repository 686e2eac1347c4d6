"""Tasks, processed commands and the event outbox.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from worker.repository.records import UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
    )
    op.create_index("ix_tasks_created_at_id", "tasks", ["created_at", "id"])

    op.create_table(
        "processed_commands",
        sa.Column("stream", sa.String(200), primary_key=True),
        sa.Column("message_id", sa.String(200), primary_key=True),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("processed_at", UtcDateTime(), nullable=False),
    )
    op.create_index(
        "ix_processed_commands_processed_at", "processed_commands", ["processed_at"]
    )

    op.create_table(
        "outbox",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("stream", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_index("ix_processed_commands_processed_at", "processed_commands")
    op.drop_table("processed_commands")
    op.drop_index("ix_tasks_created_at_id", "tasks")
    op.drop_table("tasks")
