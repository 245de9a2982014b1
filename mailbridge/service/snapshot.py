"""The state of the work, read from the database: what /metrics, STATUS= lines and
`mailbridge status` report. Computed on demand, so it matches the database exactly and
survives restarts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from mailbridge.core.sla import DEADLINES
from mailbridge.core.states import INACTIVE_STATUSES, InboundState, OutboxState, TicketStatus
from mailbridge.db.models import (
    Acknowledgement,
    Article,
    Escalation,
    Event,
    InboundMessage,
    Outbox,
    Ticket,
)
from mailbridge.tickets.spam_purge import PURGED_EVENT

__all__ = ["Brief", "Snapshot", "brief", "snapshot"]


@dataclass(frozen=True, slots=True)
class Brief:
    """The two numbers a STATUS= line needs; both come from an index."""

    outbox_pending: int
    next_escalation_at: datetime | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    ingested: dict[tuple[str, str], int] = field(default_factory=dict)  # (mailbox, kind)
    inbound_by_state: dict[InboundState, int] = field(default_factory=dict)
    last_received: dict[str, datetime] = field(default_factory=dict)  # mailbox -> time
    # mailbox -> count, purged spam included: a counter never goes down
    tickets_opened: dict[str, int] = field(default_factory=dict)
    tickets_by_status: dict[TicketStatus, int] = field(default_factory=dict)
    spam_purged: dict[str, int] = field(default_factory=dict)  # mailbox -> tickets purged
    outbox_by_state: dict[OutboxState, int] = field(default_factory=dict)
    acknowledgements_sent: int = 0
    acknowledgements_withheld: dict[str, int] = field(default_factory=dict)  # limit -> count
    escalations: dict[int, int] = field(default_factory=dict)  # level -> count
    ratings: dict[str, int] = field(default_factory=dict)  # verdict -> count (`rated` events)
    unanswered: int = 0
    overdue: int = 0
    oldest_unanswered_at: datetime | None = None
    oldest_pending_outbox_at: datetime | None = None
    next_escalation_at: datetime | None = None

    @property
    def spam(self) -> int:
        """Spam tickets held until their purge."""
        return self.tickets_by_status.get(TicketStatus.SPAM, 0)

    @property
    def quarantined(self) -> int:
        return self.inbound_by_state.get(InboundState.QUARANTINED, 0)

    def oldest_unanswered_age(self, now: datetime) -> float:
        """Seconds the longest-waiting customer has waited for a first answer; 0 if none."""
        if self.oldest_unanswered_at is None:
            return 0.0
        return max((now - self.oldest_unanswered_at).total_seconds(), 0.0)


def brief(session: Session) -> Brief:
    pending = session.scalar(
        select(func.count(Outbox.id)).where(Outbox.state == OutboxState.PENDING)
    )
    upcoming = session.scalar(select(func.min(Ticket.next_escalation_at)))
    return Brief(pending or 0, upcoming)


def _unanswered() -> list[ColumnElement[bool]]:
    return [
        Ticket.first_response_due_at.is_not(None),
        Ticket.first_responded_at.is_(None),
        Ticket.status.not_in(INACTIVE_STATUSES),
    ]


def spam_purged(session: Session) -> dict[str, int]:
    """Spam tickets purged so far, per mailbox, from the purge's events (which have no
    ticket: the ticket index finds them)."""
    purged: Counter[str] = Counter()
    for data in session.scalars(
        select(Event.data).where(Event.ticket_id.is_(None), Event.type == PURGED_EVENT)
    ):
        purged.update({str(name): int(n) for name, n in dict(data.get("mailboxes", {})).items()})
    return dict(purged)


def snapshot(session: Session, now: datetime) -> Snapshot:
    """Every number at once, in one read transaction."""
    # A message that became an article is counted by its classification; one that did not
    # (ignored, quarantined, not yet processed) by its state.
    kind_or_state = func.coalesce(Article.kind, InboundMessage.state)
    ingested = session.execute(
        select(InboundMessage.mailbox, kind_or_state, func.count(InboundMessage.id))
        .outerjoin(
            Article,
            and_(Article.inbound_message_id == InboundMessage.id, Article.direction == "in"),
        )
        .group_by(InboundMessage.mailbox, kind_or_state)
    ).all()
    by_state = session.execute(
        select(InboundMessage.state, func.count(InboundMessage.id)).group_by(InboundMessage.state)
    ).all()
    # The newest row of each mailbox is found in an index; only its time is read.
    newest = select(func.max(InboundMessage.id)).group_by(InboundMessage.mailbox)
    last_received = session.execute(
        select(InboundMessage.mailbox, InboundMessage.received_at).where(
            InboundMessage.id.in_(newest.scalar_subquery())
        )
    ).all()
    opened = session.execute(
        select(Ticket.mailbox, func.count(Ticket.id)).group_by(Ticket.mailbox)
    ).all()
    purged = spam_purged(session)
    statuses = session.execute(
        select(Ticket.status, func.count(Ticket.id)).group_by(Ticket.status)
    ).all()
    outbox: dict[OutboxState, int] = {}
    acks = 0
    for state, kind, count in session.execute(
        select(Outbox.state, Outbox.kind, func.count(Outbox.id)).group_by(Outbox.state, Outbox.kind)
    ):
        outbox[state] = outbox.get(state, 0) + count
        acks += count if (state, kind) == (OutboxState.SENT, "ack") else 0
    withheld = session.execute(
        select(Acknowledgement.withheld_by, func.count(Acknowledgement.id))
        .where(Acknowledgement.withheld_by != "")
        .group_by(Acknowledgement.withheld_by)
    ).all()
    escalations = session.execute(
        select(Escalation.level, func.count(Escalation.id))
        .where(Escalation.deadline.in_(DEADLINES))  # not a waiting cycle's reminder or close
        .group_by(Escalation.level)
    ).all()
    verdict = Event.data["verdict"].as_string()
    ratings = session.execute(
        select(verdict, func.count(Event.id)).where(Event.type == "rated").group_by(verdict)
    ).all()
    unanswered, oldest, overdue = session.execute(
        select(
            func.count(Ticket.id),
            func.min(Ticket.created_at),
            func.count(Ticket.id).filter(Ticket.first_response_due_at < now),
        ).where(*_unanswered())
    ).one()
    oldest_pending = session.scalar(
        select(func.min(Outbox.created_at)).where(Outbox.state == OutboxState.PENDING)
    )
    return Snapshot(
        ingested={(mailbox, str(k)): n for mailbox, k, n in ingested},
        inbound_by_state=dict(by_state),
        last_received=dict(last_received),
        tickets_opened=dict(Counter(dict(opened)) + Counter(purged)),
        tickets_by_status=dict(statuses),
        spam_purged=purged,
        outbox_by_state=outbox,
        acknowledgements_sent=acks,
        acknowledgements_withheld=dict(withheld),
        escalations=dict(escalations),
        ratings={str(v): n for v, n in ratings},
        unanswered=unanswered or 0,
        overdue=overdue or 0,
        oldest_unanswered_at=oldest,
        oldest_pending_outbox_at=oldest_pending,
        next_escalation_at=session.scalar(select(func.min(Ticket.next_escalation_at))),
    )
