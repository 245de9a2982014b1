"""bounces and address state

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recipients", sa.JSON(), nullable=True))
    op.create_table(
        "address_state",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("bouncing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_bounce_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bounce_count", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.String(length=32), nullable=True),
        sa.Column("last_diagnostic", sa.Text(), nullable=True),
        sa.Column("last_outbox_id", sa.Integer(), nullable=True),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["last_outbox_id"], ["outbox.id"], name=op.f("fk_address_state_last_outbox_id_outbox")
        ),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_address_state")),
    )


def downgrade() -> None:
    op.drop_table("address_state")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("recipients")
