"""Sweep: find tickets past a deadline and record each escalation level once.

The unique (ticket, deadline, level) row makes firing idempotent across crashes and
instances; the notification is queued in the same transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailbridge.app import App
from mailbridge.core.humanize import excerpt, format_duration
from mailbridge.core.message import Address
from mailbridge.core.sla import overdue_by
from mailbridge.db import queries
from mailbridge.db.models import Escalation, Event, Ticket
from mailbridge.jobs.outgoing import queue_mail, ticket_context

log = logging.getLogger(__name__)

BATCH = 200
CLOSED = frozenset({"resolved", "closed"})


def sweep(app: App) -> int:
    """Fire every escalation due now; returns how many fired."""
    now = app.clock.now()
    fired = 0
    while True:
        with app.transaction() as session:
            due = queries.tickets_due(session, now, BATCH)
            for ticket in due:
                fired += _escalate(session, app, ticket, now)
        if len(due) < BATCH:
            return fired


def _escalate(session: Session, app: App, ticket: Ticket, now: datetime) -> int:
    ticket.next_escalation_at = None
    if ticket.status in CLOSED or ticket.first_responded_at is not None:
        return 0
    due = ticket.first_response_due_at or now
    level = ticket.escalation_level + 1
    try:
        with session.begin_nested():
            session.add(Escalation(ticket_id=ticket.id, policy=ticket.sla_policy,
                                   deadline="first_response", level=level, due_at=due,
                                   fired_at=now))
    except IntegrityError:
        return 0  # fired already, by an earlier pass or another instance
    ticket.escalation_level = level
    late = overdue_by(due, now)
    session.add(Event(ticket_id=ticket.id, at=now, type="escalated",
                      data={"deadline": "first_response", "level": level,
                            "due_at": due.isoformat(),
                            "overdue_minutes": int(late.total_seconds() // 60)}))
    log.warning("ticket #%s: first response overdue by %s, escalation level %d",
                ticket.number, format_duration(late, "en"), level)
    _notify(session, app, ticket, level, late, now)
    return 1


def _notify(session: Session, app: App, ticket: Ticket, level: int, late: timedelta,
            now: datetime) -> None:
    staff = app.config.staff
    target = staff.escalation_address or staff.team_address
    if not target:
        return
    language = app.config.templates.language
    context = ticket_context(app, ticket, language)
    context.update(escalation_level=level, overdue_by=format_duration(late, language),
                   excerpt=excerpt(queries.first_customer_text(session, ticket.id)))
    queue_mail(session, app, kind="escalation", ticket=ticket, template="escalation",
               context=context, to=[Address("", target)], language=language,
               unique=f"esc.{ticket.id}.first_response.{level}", now=now)
