"""full-text search: a cheaper index upkeep (PostgreSQL: one accent fold per text, the
document made from the written row, kept out of line); the index is built again

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

from mailbridge.db import search_index

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    search_index.drop(op.get_bind())
    search_index.create(op.get_bind())


def downgrade() -> None:
    search_index.drop(op.get_bind())
    search_index.create(op.get_bind())
