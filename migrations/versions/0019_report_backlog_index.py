"""report backlog index: tickets by resolution and creation, with their status

The report's backlog reads the tickets never resolved and those resolved after a moment,
with their creation; with the status in the index too (spam and merged are left out), it
reads no table row.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-09
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_ticket_resolved_at_created_at_status",
        "ticket",
        ["resolved_at", "created_at", "status"],
    )
    op.drop_index("ix_ticket_resolved_at_created_at", table_name="ticket")


def downgrade() -> None:
    op.create_index("ix_ticket_resolved_at_created_at", "ticket", ["resolved_at", "created_at"])
    op.drop_index("ix_ticket_resolved_at_created_at_status", table_name="ticket")
