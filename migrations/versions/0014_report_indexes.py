"""report indexes: tickets by creation and by resolution, acknowledgements, escalations
and events by time, for `mailbridge report`

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_ticket_created_at", "ticket", ["created_at"]),
    ("ix_ticket_resolved_at_created_at", "ticket", ["resolved_at", "created_at"]),
    (
        "ix_outbox_kind_created_at_ticket_id_sent_at",
        "outbox",
        ["kind", "created_at", "ticket_id", "sent_at"],
    ),
    ("ix_escalation_fired_at_ticket_id_level", "escalation", ["fired_at", "ticket_id", "level"]),
    ("ix_event_type_at_ticket_id", "event", ["type", "at", "ticket_id"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
