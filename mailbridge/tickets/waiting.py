"""Waiting on the customer: the reminder, the automatic close, and staff `#pending`.

The sweep (tickets/escalate.py) fires a waiting cycle's steps like its own levels: each is
a unique `escalation` row (deadline "waiting:<cycle start>", level 1 the reminder, level 2
the close), written with its mail and event in the sweep's transaction, so neither a second
pass nor a second instance sends one twice. The timing is core/waiting.py; when a cycle
starts and ends is tickets/deadlines.py (a staff answer, `#pending`, the customer's reply).

Runs inside the caller's transaction and commits nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from mailbridge.app import App, Step
from mailbridge.core import waiting
from mailbridge.core.humanize import format_deadline
from mailbridge.core.message import Address
from mailbridge.core.sender import answerable
from mailbridge.core.sla import DueStep, parse_duration
from mailbridge.core.staff import StaffMessage
from mailbridge.core.states import MailKind, TicketStatus
from mailbridge.db import queries
from mailbridge.db.models import Ticket
from mailbridge.outbound.queue import Mail, queue_mail, ticket_context, ticket_zone
from mailbridge.tickets import deadlines, participants, tallies
from mailbridge.tickets.events import add_event
from mailbridge.tickets.rating import rating_links

log = logging.getLogger(__name__)


def apply_command(step: Step, ticket: Ticket, message: StaffMessage, by: str) -> dict[str, object]:
    """`#pending` (the configured reminder) or `#pending 5d` (remind after 5 days): the
    ticket waits on the customer from now, answered or not; what changed, for the event."""
    if not message.has("pending"):
        return {}
    argument = (message.argument("pending") or "").strip().lower()
    return set_pending(step, ticket, parse_duration(argument) if argument else None, by, "mail")


def set_pending(
    step: Step, ticket: Ticket, remind_after: timedelta | None, by: str, via: str
) -> dict[str, object]:
    """Start a waiting cycle now, with its own reminder delay when one is given (kept until
    the customer writes)."""
    if remind_after is not None:
        remind_after = min(remind_after, waiting.MAX_WAIT)
    ticket.pending_remind_seconds = (
        None if remind_after is None else int(remind_after.total_seconds())
    )
    status_from = ticket.status
    if ticket.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
        ticket.resolved_at = None
    deadlines.start_waiting(step, ticket)
    deadlines.refresh_next_due(step, ticket)
    reminder, close = planned(step, ticket)
    add_event(
        step,
        ticket,
        "pending_set",
        by=by,
        via=via,
        status_from=status_from,
        remind_after_seconds=ticket.pending_remind_seconds,
        reminder_at=reminder.isoformat() if reminder else None,
        close_at=close.isoformat() if close else None,
    )
    return {"pending": ticket.pending_remind_seconds or "default"}


def planned(step: Step, ticket: Ticket) -> tuple[datetime | None, datetime | None]:
    """(reminder, close) as planned now; see planned_for."""
    return planned_for(step.app, ticket)


def planned_for(app: App, ticket: Ticket) -> tuple[datetime | None, datetime | None]:
    """(reminder, close) of the ticket's waiting cycle as planned now, for events and
    `tickets show`; None for a step that is off, sent already, or when nothing waits."""
    if ticket.status != TicketStatus.WAITING or ticket.pending_since is None:
        return None, None
    remind, close = deadlines.waiting_times(app, ticket)
    cal = deadlines.waiting_calendar(app, ticket, ticket.pending_since)
    return waiting.planned(ticket.pending_since, remind, close, ticket.reminded_at, cal)


def fire(step: Step, ticket: Ticket, due: DueStep) -> None:
    """The sweep's step of a waiting cycle, recorded already: remind, or close."""
    if due.step.level == waiting.REMINDER:
        _remind(step, ticket, due)
    else:
        _close(step, ticket, due)


def _remind(step: Step, ticket: Ticket, due: DueStep) -> None:
    ticket.reminded_at = step.now
    _, close = planned(step, ticket)
    language = ticket.language or step.app.brand(ticket.mailbox).language
    context = ticket_context(step.app, ticket, language)
    zone = ticket_zone(step.app, ticket)
    context["closes_at"] = format_deadline(close, language, zone) if close else ""
    row = _tell_customer(step, ticket, "reminder", context, language)
    log.info("ticket #%s: waiting on the customer, reminder sent", ticket.number)
    add_event(
        step,
        ticket,
        "reminder_sent",
        by="system",
        via="sweep",
        due_at=due.at.isoformat(),
        close_at=close.isoformat() if close else None,
        outbox_id=row,
    )


def _close(step: Step, ticket: Ticket, due: DueStep) -> None:
    ticket.status = TicketStatus.RESOLVED
    ticket.resolved_at = step.now
    ticket.next_escalation_at = None
    ticket.updated_at = step.now
    tallies.resolved(step, ticket)
    language = ticket.language or step.app.brand(ticket.mailbox).language
    context = ticket_context(step.app, ticket, language)
    context.update(rating_links(step.app, ticket, step.now))  # "yes, solved" / "no"
    row = _tell_customer(step, ticket, "auto_closed", context, language)
    log.info("ticket #%s: no answer from the customer, resolved", ticket.number)
    add_event(
        step,
        ticket,
        "auto_closed",
        by="system",
        via="sweep",
        due_at=due.at.isoformat(),
        reminded_at=ticket.reminded_at.isoformat() if ticket.reminded_at else None,
        outbox_id=row,
    )


def _tell_customer(
    step: Step, ticket: Ticket, kind: MailKind, context: dict[str, object], language: str
) -> int | None:
    """The mail to the requester, participants in Cc, threaded into their conversation like
    a staff answer; None when the ticket has no one to tell."""
    if not answerable(ticket.requester_address):
        return None
    thread = queries.customer_thread(step.session, ticket.id)
    row = queue_mail(
        step,
        Mail(
            kind=kind,
            ticket=ticket,
            template=kind,
            context=context,
            to=[Address(ticket.requester_name, ticket.requester_address)],
            cc=participants.cc_of(step, ticket),
            language=language,
            unique=f"{kind}.{ticket.id}",
            in_reply_to=thread[-1] if thread else None,
            references=thread,
        ),
    )
    return row.id
