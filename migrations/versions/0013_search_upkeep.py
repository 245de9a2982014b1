"""full-text search: a cheaper index upkeep on PostgreSQL (one accent fold per text, the
document made from the row being written); its index is built again. SQLite's is unchanged.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

from mailbridge.db import search_index

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    rebuild()


def downgrade() -> None:
    rebuild()  # 0011 creates what search_index defines, so going back changes nothing


def rebuild() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        search_index.drop(connection)
        search_index.create(connection)
