"""metrics: the tally of counters written as things happen, and indexes that keep a
/metrics scrape to index reads

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_ticket_status_queue", "ticket", ["status", "queue"]),
    # Named by hand: the convention's name is longer than PostgreSQL keeps.
    (
        "ix_ticket_unanswered",
        "ticket",
        ["first_responded_at", "first_response_due_at", "status", "created_at"],
    ),
    ("ix_outbox_state_created_at", "outbox", ["state", "created_at"]),
)


def upgrade() -> None:
    op.create_table(
        "tally",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tally")),
    )
    for name, table, columns in INDEXES:
        op.create_index(op.f(name), table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(op.f(name), table_name=table)
    op.drop_table("tally")
