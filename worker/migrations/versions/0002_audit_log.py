"""The audit log: every event with a gap-free sequence number, in a hash chain.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from worker.repository.records import UtcDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS_HASH = "0" * 64


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("type", sa.String(50), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("source", sa.String(200), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_task_id_seq", "audit_log", ["task_id", "seq"])
    op.create_index("ix_audit_log_type_seq", "audit_log", ["type", "seq"])
    op.create_index("ix_audit_log_occurred_at", "audit_log", ["occurred_at"])

    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("first_prev_hash", sa.String(64), nullable=False),
    )
    # Events relayed before this revision predate the chain: it starts here.
    op.bulk_insert(
        head,
        [
            {
                "id": 1,
                "last_seq": 0,
                "last_hash": GENESIS_HASH,
                "first_seq": 1,
                "first_prev_hash": GENESIS_HASH,
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_index("ix_audit_log_occurred_at", "audit_log")
    op.drop_index("ix_audit_log_type_seq", "audit_log")
    op.drop_index("ix_audit_log_task_id_seq", "audit_log")
    op.drop_table("audit_log")
