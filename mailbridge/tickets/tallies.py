"""What /metrics counts as it happens (core/tallies.py names the counters): each function
is called by the step that does the thing and counts in its transaction (db/tally.py).

Counted when it happens, with the labels it has then, because a count recomputed from the
tickets would go back when a ticket changes queue or policy, turns spam or is purged, and
Prometheus reads any step back as a restart. Every label value is one the configuration
names, else "other": no mail, and no queue a staff member types, adds a series.
"""

from __future__ import annotations

from mailbridge.app import App, Step
from mailbridge.core import tallies
from mailbridge.core.tallies import Labels, bounded, labels, observation
from mailbridge.db import tally
from mailbridge.db.models import Ticket

__all__ = [
    "acknowledgement_withheld",
    "escalated",
    "first_response",
    "fold",
    "marked_spam",
    "message_settled",
    "rated",
    "resolved",
    "ticket_created",
    "ticket_reopened",
]


def _mailbox(app: App, name: str) -> str:
    return bounded(name, {mailbox.name for mailbox in app.config.mailbox})


def _of_ticket(app: App, ticket: Ticket) -> dict[str, str]:
    """The ticket's mailbox, queue and SLA policy, as label values."""
    return {
        "mailbox": _mailbox(app, ticket.mailbox),
        "queue": bounded(ticket.queue, app.config.queue_names),
        "policy": bounded(ticket.sla_policy, {policy.name for policy in app.config.sla}),
    }


def _deadline(deadline: str, policy: str, met: bool) -> tuple[str, Labels, float]:
    name = tallies.SLA_MET if met else tallies.SLA_BREACHED
    return name, labels(deadline=deadline, policy=policy), 1.0


def _count(step: Step, name: str, **values: str) -> None:
    tally.add(step.session, [(name, labels(**values), 1.0)])


def ticket_created(step: Step, ticket: Ticket) -> None:
    _count(step, tallies.TICKETS_CREATED, **_of_ticket(step.app, ticket))


def first_response(step: Step, ticket: Ticket) -> None:
    """The first staff answer to the customer: how long it took, and, on a ticket with a
    first-response deadline, whether that was kept."""
    key = _of_ticket(step.app, ticket)
    seconds = (step.now - ticket.created_at).total_seconds()
    counts = list(observation(tallies.FIRST_RESPONSE, key, seconds))
    due = ticket.first_response_due_at
    if due is not None:
        counts.append(_deadline("first_response", key["policy"], step.now <= due))
    tally.add(step.session, counts)


def resolved(step: Step, ticket: Ticket) -> None:
    """The ticket was resolved or closed: whether its resolution deadline was kept. The
    clock stopped when it began to wait on the customer, as the report counts it."""
    due = ticket.resolution_due_at
    if due is None:
        return
    stopped = ticket.waiting_since or step.now
    policy = _of_ticket(step.app, ticket)["policy"]
    tally.add(step.session, [_deadline("resolution", policy, stopped <= due)])


def ticket_reopened(step: Step, ticket: Ticket) -> None:
    key = _of_ticket(step.app, ticket)
    _count(step, tallies.TICKETS_REOPENED, mailbox=key["mailbox"], queue=key["queue"])


def marked_spam(step: Step, ticket: Ticket) -> None:
    _count(step, tallies.TICKETS_MARKED_SPAM, mailbox=_mailbox(step.app, ticket.mailbox))


def message_settled(step: Step, mailbox: str, kind: str) -> None:
    """Processing settled a message: `kind` is the classification of the article it made
    (a closed set, core/classify.py), else `processed` or `ignored`."""
    _count(step, tallies.MESSAGES_INGESTED, mailbox=_mailbox(step.app, mailbox), kind=kind)


def acknowledgement_withheld(step: Step, limit: str) -> None:
    """An hourly limit (address, domain or mailbox: core/ack_policy.py) held one back."""
    _count(step, tallies.ACKNOWLEDGEMENTS_SUPPRESSED, limit=limit)


def escalated(step: Step, level: int) -> None:
    """A warning (a negative level) or an escalation level of a deadline fired."""
    _count(step, tallies.ESCALATIONS, level=str(level))


def rated(step: Step, verdict: str) -> None:
    """A customer's rating: good or bad (core/rating.py)."""
    _count(step, tallies.RATINGS, verdict=verdict)


def fold(app: App) -> int:
    """Fold the tally's rows into one per counter and label set (db/tally.py), so a
    reading stays small; the daemon does it with each sweep. The rows folded away."""
    with app.transaction() as session:
        return tally.fold(session)
