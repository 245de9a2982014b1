"""ticket tags

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_tag",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_ticket_tag_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("ticket_id", "tag", name=op.f("pk_ticket_tag")),
    )
    op.create_index(op.f("ix_ticket_tag_tag"), "ticket_tag", ["tag"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ticket_tag_tag"), table_name="ticket_tag")
    op.drop_table("ticket_tag")
