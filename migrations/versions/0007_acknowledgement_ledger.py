"""acknowledgement ledger: per-address, per-domain and per-mailbox rate limits

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_INDEXES = ("address", "domain", "mailbox")


def upgrade() -> None:
    op.create_table(
        "acknowledgement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("mailbox", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("withheld_by", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_acknowledgement_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acknowledgement")),
    )
    for key in _INDEXES:
        op.create_index(
            op.f(f"ix_acknowledgement_{key}_withheld_by_at"),
            "acknowledgement",
            [key, "withheld_by", "at"],
            unique=False,
        )
    _backfill()


def _backfill() -> None:
    """Acknowledgements already queued count against the limits from the first hour on."""
    bind = op.get_bind()
    address = "ticket.requester_address"
    domain = (
        f"lower(substring({address} from '[^@]*$'))"
        if bind.dialect.name == "postgresql"
        else f"lower(substr({address}, instr({address}, '@') + 1))"
    )
    op.execute(
        "INSERT INTO acknowledgement (ticket_id, mailbox, address, domain, withheld_by, at) "
        f"SELECT outbox.ticket_id, ticket.mailbox, {address}, {domain}, '', outbox.created_at "
        "FROM outbox JOIN ticket ON ticket.id = outbox.ticket_id WHERE outbox.kind = 'ack'"
    )


def downgrade() -> None:
    for key in _INDEXES:
        op.drop_index(
            op.f(f"ix_acknowledgement_{key}_withheld_by_at"), table_name="acknowledgement"
        )
    op.drop_table("acknowledgement")
