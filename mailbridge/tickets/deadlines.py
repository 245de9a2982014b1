"""Clock rules: when a ticket's deadlines fall and what moves them.

A new ticket gets both deadlines from its policy. The first staff reply to the customer meets
the first response; a staff reply leaves the ticket waiting on the customer and stops the
resolution clock until the customer writes again. A customer writing to a ticket that still
waits for us is a chaser: recorded, and per policy it raises the priority and brings the
deadline closer. A priority or queue change recomputes the deadlines. Every change ends by
storing the next moment the sweep must look at the ticket (`next_escalation_at`).

Each function runs inside the caller's transaction and commits nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbridge.app import App, Step
from mailbridge.config import SlaPolicy
from mailbridge.core import sla, waiting
from mailbridge.core.business_hours import BusinessCalendar
from mailbridge.core.states import CLOSED_STATUSES, INACTIVE_STATUSES, TicketStatus
from mailbridge.db import queries
from mailbridge.db.models import Ticket
from mailbridge.tickets import tallies
from mailbridge.tickets.events import add_event

log = logging.getLogger(__name__)

AWAITING_US = frozenset({TicketStatus.NEW, TicketStatus.OPEN})


@dataclass(frozen=True, slots=True)
class NewTicketDeadlines:
    policy: SlaPolicy
    first_response: datetime
    resolution: datetime
    next_due: datetime | None  # the first warning or level


def policy_for(app: App, ticket: Ticket) -> SlaPolicy:
    """The ticket's policy by name; if the configuration no longer has it, the one that
    matches now."""
    return _named(app, ticket.sla_policy) or _matching(
        app, ticket.mailbox, ticket.priority, ticket.queue
    )


def _named(app: App, name: str | None) -> SlaPolicy | None:
    return next((policy for policy in app.config.sla if policy.name == name), None)


def _matching(app: App, mailbox: str, priority: str, queue: str | None) -> SlaPolicy:
    """The first policy whose match keys hold, the mailbox's own default in place of the
    policy without keys."""
    return sla.select_policy(
        app.config.sla, mailbox, priority, queue, app.config.mailbox_sla(mailbox)
    )


def calendar_for(
    app: App, policy: SlaPolicy, moment: datetime, mailbox: str, queue: str | None
) -> BusinessCalendar | None:
    """The business calendar of a ticket in `mailbox` and `queue` (its queue's, else its
    mailbox's, else the default) when the policy counts business hours; None for calendar
    time."""
    if not policy.business_hours:
        return None
    calendar = app.config.ticket_calendar(mailbox, queue)
    return calendar.business_calendar(moment.astimezone(calendar.zone).year)


def ticket_clock(
    app: App, ticket: Ticket, policy: SlaPolicy, moment: datetime
) -> BusinessCalendar | None:
    """calendar_for the ticket's own mailbox and queue."""
    return calendar_for(app, policy, moment, ticket.mailbox, ticket.queue)


def deadlines_for_new_ticket(
    app: App,
    mailbox: str,
    priority: str,
    now: datetime,
    queue: str | None = None,
    policy_name: str | None = None,
) -> NewTicketDeadlines:
    """The policy named (a routing rule chose it), else the first that matches."""
    policy = _named(app, policy_name) or _matching(app, mailbox, priority, queue)
    cal = calendar_for(app, policy, now, mailbox, queue)
    due = sla.compute_deadlines(now, policy.first_response, policy.resolution, cal)
    deadlines = {"first_response": due.first_response, "resolution": due.resolution}
    pending = sla.pending_steps(policy.steps, deadlines, (), now, cal)
    return NewTicketDeadlines(policy, due.first_response, due.resolution, sla.next_moment(pending))


def open_deadlines(ticket: Ticket) -> dict[str, datetime | None]:
    """Each deadline still running; None when met, paused, closed, spam or never tracked:
    the sweep schedules nothing for a spam ticket, whatever deadlines it once had."""
    if ticket.status in INACTIVE_STATUSES:
        return {"first_response": None, "resolution": None}
    first = ticket.first_response_due_at if ticket.first_responded_at is None else None
    running = ticket.resolved_at is None and ticket.waiting_since is None
    return {"first_response": first, "resolution": ticket.resolution_due_at if running else None}


def pending_steps(
    app: App, ticket: Ticket, fired: Collection[tuple[str, int]], now: datetime
) -> list[sla.DueStep]:
    policy = policy_for(app, ticket)
    cal = ticket_clock(app, ticket, policy, ticket.created_at)
    found = sla.pending_steps(policy.steps, open_deadlines(ticket), fired, now, cal)
    found += waiting_steps(app, ticket, fired)
    return sorted(found, key=lambda due: due.at)


def waiting_times(app: App, ticket: Ticket) -> tuple[timedelta, timedelta]:
    """(remind_after, close_after) of the ticket's waiting cycle; zero means off. A
    `#pending 5d` replaces remind_after until the customer writes."""
    remind, close = app.config.tickets.waiting_times(ticket.queue)
    if ticket.pending_remind_seconds is not None:
        remind = timedelta(seconds=ticket.pending_remind_seconds)
    return remind, close


def waiting_calendar(app: App, ticket: Ticket, moment: datetime) -> BusinessCalendar | None:
    return ticket_clock(app, ticket, policy_for(app, ticket), moment)


def waiting_steps(
    app: App, ticket: Ticket, fired: Collection[tuple[str, int]]
) -> list[sla.DueStep]:
    """The reminder and automatic close still to come in the ticket's waiting cycle."""
    if ticket.status != TicketStatus.WAITING or ticket.pending_since is None:
        return []
    remind, close = waiting_times(app, ticket)
    cal = waiting_calendar(app, ticket, ticket.pending_since)
    return waiting.waiting_steps(
        ticket.pending_since, remind, close, ticket.reminded_at, fired, cal
    )


def start_waiting(step: Step, ticket: Ticket) -> None:
    """The ticket waits on the customer from now: the resolution clock stops (if it runs)
    and a fresh waiting cycle begins. The caller refreshes next_escalation_at."""
    if ticket.waiting_since is None:
        ticket.waiting_since = step.now
        add_event(step, ticket, "sla_paused", deadline="resolution", status_from=ticket.status)
    ticket.status = TicketStatus.WAITING
    ticket.pending_since = step.now
    ticket.reminded_at = None


def refresh_next_due(step: Step, ticket: Ticket) -> None:
    """Store when the sweep must next look at the ticket, from what has fired already."""
    fired = queries.fired_steps(step.session, [ticket.id])[ticket.id]
    ticket.next_escalation_at = sla.next_moment(pending_steps(step.app, ticket, fired, step.now))


def on_staff_reply(step: Step, ticket: Ticket, text: str | None = None) -> None:
    """A staff reply went to the customer (not an acknowledgement, not an internal note):
    it meets the first response, and the ticket now waits on the customer, which stops the
    resolution clock and starts a waiting cycle. With `tickets.wait_after_question`, only
    an answer (`text`) whose last line asks a question does that; any other leaves the
    ticket open for us."""
    ticket.updated_at = step.now
    if ticket.first_responded_at is None:
        ticket.first_responded_at = step.now
        due = ticket.first_response_due_at
        add_event(
            step,
            ticket,
            "first_response",
            due_at=_iso(due),
            late_minutes=_minutes(sla.overdue_by(due, step.now)) if due else None,
        )
        tallies.first_response(step, ticket)
    asks = text is None or waiting.ends_with_question(text)
    # Spam stays spam when answered (only #notspam ends it), so it is still purged.
    if ticket.status not in INACTIVE_STATUSES:
        if asks or not step.app.config.tickets.wait_after_question:
            start_waiting(step, ticket)
        elif ticket.status == TicketStatus.NEW:
            ticket.status = TicketStatus.OPEN
    refresh_next_due(step, ticket)


def on_customer_followup(step: Step, ticket: Ticket) -> None:
    """The customer wrote again. Waiting on them, or resolved: the ticket is open again and
    the resolution clock runs on, the pause not counted. Still waiting for us: a chaser."""
    previous = ticket.status
    if previous in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
        tallies.ticket_reopened(step, ticket)
    if previous == TicketStatus.WAITING or previous in CLOSED_STATUSES:
        paused_since = ticket.waiting_since or ticket.resolved_at or step.now
        _resume(step, ticket, paused_since)
        ticket.status = TicketStatus.OPEN
        ticket.resolved_at = None
        # The waiting cycle ends: the next answer that waits on them starts a fresh one.
        ticket.pending_since = ticket.reminded_at = ticket.pending_remind_seconds = None
    elif previous in AWAITING_US:
        _chaser(step, ticket)
    refresh_next_due(step, ticket)


def on_priority_or_queue_change(step: Step, ticket: Ticket, policy_name: str | None = None) -> None:
    """The caller has changed ticket.priority or ticket.queue: pick the policy that matches
    now (or the one named, which a routing rule chose) and recompute the deadlines still
    running from the ticket's start."""
    policy = _named(step.app, policy_name) or _matching(
        step.app, ticket.mailbox, ticket.priority, ticket.queue
    )
    if _tracked(ticket):
        # A new queue may count in another calendar: the deadlines follow it from the start.
        cal = ticket_clock(step.app, ticket, policy, ticket.created_at)
        paused = timedelta(seconds=ticket.resolution_paused_seconds)
        due = sla.compute_deadlines(
            ticket.created_at, policy.first_response, policy.resolution, cal, paused
        )
        if ticket.first_responded_at is None:
            ticket.first_response_due_at = due.first_response
        if ticket.resolved_at is None:
            ticket.resolution_due_at = due.resolution
    add_event(
        step,
        ticket,
        "sla_recomputed",
        sla_policy=policy.name,
        previous_policy=ticket.sla_policy,
        priority=ticket.priority,
        queue=ticket.queue,
        first_response_due_at=_iso(ticket.first_response_due_at),
        resolution_due_at=_iso(ticket.resolution_due_at),
    )
    ticket.sla_policy = policy.name
    ticket.updated_at = step.now
    refresh_next_due(step, ticket)


def _tracked(ticket: Ticket) -> bool:
    """Automated mail opens tickets without deadlines; they stay untracked."""
    return ticket.first_response_due_at is not None or ticket.resolution_due_at is not None


def _resume(step: Step, ticket: Ticket, since: datetime) -> None:
    policy = policy_for(step.app, ticket)
    cal = ticket_clock(step.app, ticket, policy, since)
    paused = sla.elapsed(since, step.now, cal)
    ticket.waiting_since = None
    ticket.resolution_paused_seconds += int(paused.total_seconds())
    if ticket.resolution_due_at is not None:
        ticket.resolution_due_at = sla.shift(ticket.resolution_due_at, paused, cal)
    add_event(
        step,
        ticket,
        "sla_resumed",
        deadline="resolution",
        paused_minutes=_minutes(paused),
        resolution_due_at=_iso(ticket.resolution_due_at),
    )


def _chaser(step: Step, ticket: Ticket) -> None:
    policy = policy_for(step.app, ticket)
    add_event(step, ticket, "chaser", status=ticket.status, priority=ticket.priority)
    if not _tracked(ticket):
        return
    higher = sla.raised_priority(ticket.priority, policy.chaser.raise_priority)
    if higher != ticket.priority:
        add_event(
            step,
            ticket,
            "priority_raised",
            reason="chaser",
            priority_from=ticket.priority,
            priority_to=higher,
        )
        ticket.priority = higher
        on_priority_or_queue_change(step, ticket)
        policy = policy_for(step.app, ticket)
    if policy.chaser.shorten_to is not None:
        shorten(step, ticket, policy.chaser.shorten_to, reason="chaser")


def shorten(step: Step, ticket: Ticket, within: timedelta, reason: str) -> None:
    """Bring the deadline the customer is waiting on to at most `within` from now (on the
    policy's clock). The caller refreshes next_escalation_at."""
    policy = policy_for(step.app, ticket)
    name = "first_response" if ticket.first_responded_at is None else "resolution"
    current = open_deadlines(ticket)[name]
    latest = sla.add_time(step.now, within, ticket_clock(step.app, ticket, policy, step.now))
    if current is None or current <= latest:
        return
    if name == "first_response":
        ticket.first_response_due_at = latest
    else:
        ticket.resolution_due_at = latest
    add_event(
        step,
        ticket,
        "deadline_shortened",
        deadline=name,
        reason=reason,
        due_from=current.isoformat(),
        due_to=latest.isoformat(),
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)
