"""spam: the spam status's time, blocked and allowed senders, why mail was ignored

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ticket") as batch:
        batch.add_column(sa.Column("spam_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("inbound_message") as batch:
        batch.add_column(sa.Column("reason", sa.String(length=255), nullable=True))
    op.create_table(
        "sender_rule",
        sa.Column("pattern", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("note", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("pattern", name=op.f("pk_sender_rule")),
    )


def downgrade() -> None:
    op.drop_table("sender_rule")
    with op.batch_alter_table("inbound_message") as batch:
        batch.drop_column("reason")
    with op.batch_alter_table("ticket") as batch:
        batch.drop_column("spam_at")
