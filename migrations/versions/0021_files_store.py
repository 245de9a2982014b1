"""files store: raw mail may be a file named by its sha256; both hashes indexed for the
question whether any row still names a file

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_message") as batch:
        batch.add_column(sa.Column("raw_sha256", sa.String(length=64), nullable=True))
    op.create_index(
        op.f("ix_inbound_message_raw_sha256"), "inbound_message", ["raw_sha256"], unique=False
    )
    op.create_index(op.f("ix_attachment_sha256"), "attachment", ["sha256"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_attachment_sha256"), table_name="attachment")
    op.drop_index(op.f("ix_inbound_message_raw_sha256"), table_name="inbound_message")
    with op.batch_alter_table("inbound_message") as batch:
        batch.drop_column("raw_sha256")
