"""outbox recipe: a mail rendered at send time keeps its template, values and headers

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-16
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: rows queued before it hold their bytes in `raw` and send them as they are.
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("recipe", sa.JSON(), nullable=True))


def downgrade() -> None:
    # A row never rendered has no bytes to fall back on, pending or failed (`outbox retry`
    # renders a failed one again): refuse rather than lose it.
    waiting = op.get_bind().execute(sa.text("SELECT count(*) FROM outbox WHERE recipe IS NOT NULL"))
    if count := waiting.scalar():
        raise RuntimeError(
            f"{count} outbox row(s) never rendered: send or delete them first (outbox list)"
        )
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("recipe")
