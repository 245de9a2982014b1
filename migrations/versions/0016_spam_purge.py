"""spam purge: indexes for deleting spam tickets whole, in batches

The purge walks spam by when it became spam, and deletes a batch's rows by ticket and
article; without these, each batch would read the whole acknowledgement ledger and outbox,
and PostgreSQL the whole address_state table for each outbox row deleted.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_ticket_spam_at_id", "ticket", ["spam_at", "id"]),
    ("ix_outbox_article_id", "outbox", ["article_id"]),
    ("ix_acknowledgement_ticket_id", "acknowledgement", ["ticket_id"]),
    ("ix_address_state_last_outbox_id", "address_state", ["last_outbox_id"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(op.f(name), table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(op.f(name), table_name=table)
