"""What processing one message produced, and the audit events it writes. Shared by the
apply steps (customer mail, staff mail, bounces)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from mailbridge.core.states import InboundState
from mailbridge.db import queries
from mailbridge.db.models import Ticket


@dataclass(frozen=True, slots=True)
class Outcome:
    state: InboundState  # processed or ignored
    action: str  # created | followup | duplicate | staff_reply | staff_refused | ignored | …
    ticket_number: int | None = None
    acknowledged: bool = False
    reason: str = ""


def add_event(
    session: Session, ticket: Ticket, now: datetime, event_type: str, /, **data: object
) -> None:
    """Record one audit event on the ticket (written at once, in recording order)."""
    queries.insert_event(session, ticket.id, now, event_type, data)
