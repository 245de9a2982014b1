"""Staff say a ticket is spam, or that it is not: `#spam [block]` and `#notspam` on a
notification reply, `mailbridge tickets spam N [--block]` and `tickets notspam N`.

A spam ticket gets no answer (docs/architecture.md, "Spam"): its deadlines stop, and the
acknowledgement, notifications, reminders and escalation mail it still has in the outbox are
withdrawn before they go. A row a sender has already claimed is left alone: on PostgreSQL it
is locked (outbound/send.py) and skipped here; SQLite's one sender holds no lock, and a row
withdrawn while it is being handed over is only logged there. `#notspam` gives the ticket its
deadlines again, counted from now, and the acknowledgement it never got.

Runs inside the caller's transaction and commits nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailbridge.app import Step
from mailbridge.core.staff import StaffMessage
from mailbridge.core.states import MailKind, OutboxState, TicketStatus
from mailbridge.db.models import Article, Event, Outbox, Ticket
from mailbridge.errors import MailbridgeError
from mailbridge.tickets import tallies
from mailbridge.tickets.deadlines import deadlines_for_new_ticket, refresh_next_due
from mailbridge.tickets.events import add_event
from mailbridge.tickets.sender_lists import block_sender

__all__ = [
    "LateAck",
    "Marked",
    "SpamRefused",
    "apply_command",
    "command_problems",
    "mark_not_spam",
    "mark_spam",
]

log = logging.getLogger(__name__)

SPAM_FROM = frozenset(
    {TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.WAITING, TicketStatus.SPAM}
)
# What a spam ticket's outbox may hold that nobody should get: what it sends of its own
# accord. A staff member's own answer (`reply`) and answers to staff stay.
WITHDRAWN: tuple[MailKind, ...] = ("ack", "notification", "reminder", "sla_warning", "escalation")
# Commands that answer or finish a ticket: not with #spam.
_ANSWERING = ("close", "resolve", "pending", "merge", "split", "send", "template", "notspam")

# Queues the acknowledgement a ticket never got, or records why not; True when queued. The
# callers pass inbound/acknowledge.py's acknowledge_late (this layer may not import it).
LateAck = Callable[[Step, Ticket], bool]


class SpamRefused(MailbridgeError):
    """A ticket that may not be marked spam, or not spam; the message says why."""


@dataclass(frozen=True, slots=True)
class Marked:
    """What marking a ticket spam did."""

    withdrawn: tuple[int, ...]  # outbox ids removed before they were sent
    sending: tuple[int, ...]  # outbox ids a sender held at that moment: they may go
    blocked: str | None  # the address now on the blocklist


def spam_problem(ticket: Ticket) -> str:
    """Why the ticket may not be marked spam ("" when it may)."""
    if ticket.status in SPAM_FROM:
        return ""
    return (
        f"ticket #{ticket.number} is {ticket.status}: only a new, open or waiting ticket "
        "can be marked spam"
    )


def mark_spam(step: Step, ticket: Ticket, *, by: str, via: str, block: bool = False) -> Marked:
    """Status spam from now: no deadline, none of its own mail left to send; with `block`,
    the requester's address (not its domain) joins the blocklist table."""
    problem = spam_problem(ticket)
    if problem:
        raise SpamRefused(problem)
    status_from = ticket.status
    ticket.status = TicketStatus.SPAM
    ticket.spam_at = ticket.spam_at or step.now  # marked again: purged as first planned
    ticket.updated_at = step.now
    ticket.first_response_due_at = ticket.resolution_due_at = ticket.next_escalation_at = None
    ticket.waiting_since = ticket.pending_since = ticket.reminded_at = None
    ticket.pending_remind_seconds = None
    withdrawn, sending = _withdraw_mail(step.session, ticket.id)
    tallies.marked_spam(step, ticket)
    blocked = _block_requester(step, ticket, by) if block else None
    add_event(
        step,
        ticket,
        "spam",
        by=by,
        via=via,
        status_from=status_from,
        withdrawn_outbox_ids=list(withdrawn),
        sending_outbox_ids=list(sending),
        blocked=blocked,
    )
    log.info(
        "ticket #%s marked spam by %s: %d pending mail(s) withdrawn",
        ticket.number,
        by,
        len(withdrawn),
    )
    return Marked(withdrawn, sending, blocked)


def _withdraw_mail(session: Session, ticket_id: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Delete the ticket's pending rows of the WITHDRAWN kinds that no sender holds;
    (deleted ids, ids held by a sender)."""
    pending = (
        select(Outbox.id)
        .where(
            Outbox.ticket_id == ticket_id,
            Outbox.state == OutboxState.PENDING,
            Outbox.kind.in_(WITHDRAWN),
        )
        .order_by(Outbox.id)
    )
    every = tuple(session.scalars(pending))
    if not every:
        return (), ()
    free = tuple(session.scalars(pending.with_for_update(skip_locked=True)))
    if free:
        session.execute(delete(Outbox).where(Outbox.id.in_(free)))
    return free, tuple(i for i in every if i not in free)


def _block_requester(step: Step, ticket: Ticket, by: str) -> str | None:
    address = ticket.requester_address
    if not address:
        return None
    note = f"#spam on ticket #{ticket.number}"
    try:
        return block_sender(step.session, address, by, note, step.now).pattern
    except ValueError as exc:  # an address no pattern can name (spaces, two @)
        log.warning("ticket #%s: %s not blocked: %s", ticket.number, address, exc)
        return None


def mark_not_spam(
    step: Step, ticket: Ticket, *, by: str, via: str, acknowledge: LateAck | None = None
) -> bool:
    """Back to `new` (`open` when staff had answered), deadlines counted from now as for a
    new ticket; `acknowledge` queues the acknowledgement when none ever went out. True when
    it was queued."""
    if ticket.status != TicketStatus.SPAM:
        raise SpamRefused(f"ticket #{ticket.number} is not spam (it is {ticket.status})")
    answered = ticket.first_responded_at is not None
    opened_as_spam = _never_out_of_spam(step.session, ticket.id)
    ticket.status = TicketStatus.OPEN if answered else TicketStatus.NEW
    ticket.spam_at = None
    ticket.updated_at = step.now
    kind = _restart_deadlines(step, ticket)
    sent = acknowledged(step.session, ticket.id)
    add_event(
        step,
        ticket,
        "not_spam",
        by=by,
        via=via,
        status_to=ticket.status,
        first_response_due_at=_iso(ticket.first_response_due_at),
        resolution_due_at=_iso(ticket.resolution_due_at),
        acknowledged_before=sent,
        opened_as_spam=opened_as_spam,
        kind=kind,
    )
    return not sent and acknowledge is not None and acknowledge(step, ticket)


def _never_out_of_spam(session: Session, ticket_id: int) -> bool:
    """Whether the ticket was opened as spam and has been spam ever since: such a ticket was
    never announced as opened (core/webhook_events.py), and is, once, when it stops being
    spam. Processing's event for a ticket opened as spam has no `status_from`; staff's
    marks have one."""
    marks = session.execute(
        select(Event.type, Event.data)
        .where(Event.ticket_id == ticket_id, Event.type.in_(("spam", "not_spam")))
        .order_by(Event.id)
    ).all()
    return (
        bool(marks)
        and all(type_ == "spam" for type_, _ in marks)
        and ("status_from" not in marks[0].data)
    )


def _restart_deadlines(step: Step, ticket: Ticket) -> str:
    """The deadlines a ticket opened now would get; none for automated mail, which opens
    tickets without them (inbound/apply.py). Returns the opening mail's kind ("customer"
    when there is none: a ticket opened on a customer's behalf)."""
    due = deadlines_for_new_ticket(
        step.app, ticket.mailbox, ticket.priority, step.now, ticket.queue, ticket.sla_policy
    )
    ticket.sla_policy = due.policy.name
    opening = opening_article(step.session, ticket.id)
    kind = "customer" if opening is None else opening.kind
    if kind == "customer":
        if ticket.first_responded_at is None:
            ticket.first_response_due_at = due.first_response
        ticket.resolution_due_at = due.resolution
    refresh_next_due(step, ticket)
    return kind


def opening_article(session: Session, ticket_id: int) -> Article | None:
    """The first mail from outside on the ticket: the one it was opened with."""
    query = (
        select(Article)
        .where(Article.ticket_id == ticket_id, Article.direction == "in")
        .where(Article.author_kind != "staff")
        .order_by(Article.id)
        .limit(1)
    )
    return session.scalars(query).first()


def acknowledged(session: Session, ticket_id: int) -> bool:
    """Has an acknowledgement of this ticket gone out, or is one still to go (held by a
    sender)? One that failed for good reached nobody."""
    query = select(Outbox.id).where(
        Outbox.ticket_id == ticket_id, Outbox.kind == "ack", Outbox.state != OutboxState.FAILED
    )
    return session.scalars(query.limit(1)).first() is not None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


# --- by mail -------------------------------------------------------------------------------


def command_problems(ticket: Ticket, message: StaffMessage) -> list[str]:
    """What is wrong with a staff reply's `#spam` or `#notspam`, checked before anything of
    the reply is applied, so a refused reply changes nothing."""
    if message.has("spam"):
        clash = [f"#{name}" for name in _ANSWERING if message.has(name)]
        if clash:
            return [f"#spam and {', '.join(clash)} together: spam gets no answer"]
        problem = spam_problem(ticket)
        return [f"#spam: {problem}"] if problem else []
    if message.has("notspam") and ticket.status != TicketStatus.SPAM:
        return [f"#notspam: ticket #{ticket.number} is not spam (it is {ticket.status})"]
    return []


def apply_command(
    step: Step, ticket: Ticket, message: StaffMessage, by: str, acknowledge: LateAck
) -> dict[str, object]:
    """A staff reply's `#spam [block]` or `#notspam`; what changed, for the event. A
    `#notspam` whose reply answers the customer needs no late acknowledgement."""
    if message.has("spam"):
        block = message.argument("spam") == "block"
        marked = mark_spam(step, ticket, by=by, via="mail", block=block)
        return {"spam": True, "withdrawn_outbox_ids": list(marked.withdrawn)}
    if message.has("notspam"):
        answers = not message.has("note") and bool(message.text or message.argument("template"))
        mark_not_spam(step, ticket, by=by, via="mail", acknowledge=None if answers else acknowledge)
        return {"spam": False}
    return {}
