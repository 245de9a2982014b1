"""Spam tickets for the tests of what spam costs and of its purge: made the way a spam
verdict or a staff #spam leaves them (status "spam", spam_at set), straight in the
database, with whatever the ticket had before (deadlines, assignee, a waiting cycle) left
in place, as the hostile case."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from mailbridge.core.states import TicketStatus
from mailbridge.db.models import Ticket
from tests.support.sla_world import World


def mark_spam(world: World, number: int, at: datetime | None = None, **values: object) -> None:
    """Ticket `number` becomes spam at `at` (now by default); `values` set more columns."""
    with world.session() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        ticket.status, ticket.spam_at = TicketStatus.SPAM, at or world.now
        for name, value in values.items():
            setattr(ticket, name, value)
