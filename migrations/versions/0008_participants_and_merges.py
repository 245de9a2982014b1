"""participants and merges: who else is in a ticket's conversation, and where a merged
ticket's mail goes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_participant",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(length=320), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_ticket_participant_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("ticket_id", "address", name=op.f("pk_ticket_participant")),
    )
    op.create_index(
        op.f("ix_ticket_participant_address"), "ticket_participant", ["address"], unique=False
    )
    with op.batch_alter_table("ticket") as batch:
        batch.add_column(sa.Column("merged_into_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("merged_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key(
            op.f("fk_ticket_merged_into_id_ticket"), "ticket", ["merged_into_id"], ["id"]
        )
        batch.create_index(op.f("ix_ticket_merged_into_id"), ["merged_into_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ticket") as batch:
        batch.drop_index(op.f("ix_ticket_merged_into_id"))
        batch.drop_constraint(op.f("fk_ticket_merged_into_id_ticket"), type_="foreignkey")
        batch.drop_column("merged_at")
        batch.drop_column("merged_into_id")
    op.drop_index(op.f("ix_ticket_participant_address"), table_name="ticket_participant")
    op.drop_table("ticket_participant")
