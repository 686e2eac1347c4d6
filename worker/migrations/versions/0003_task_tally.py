"""The task tally: how many tasks there are, so `list` need not count the table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task_tally",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tasks", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO task_tally (id, tasks) SELECT 1, count(*) FROM tasks")


def downgrade() -> None:
    op.drop_table("task_tally")
