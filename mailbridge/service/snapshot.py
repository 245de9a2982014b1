"""The state of the work, read from the database: what /metrics, STATUS= lines and
`mailbridge status` report. Computed on demand, so it matches the database exactly and
survives restarts.

A Snapshot is what a /metrics scrape reads: the rows still in play (tickets not yet
resolved, mail still to send, quarantine), each found in an index, and the counters the
database keeps as things happen (db/tally.py). So a scrape costs the same whatever the
history holds (bench/metrics.py). The recounts of the whole history that only `mailbridge
status` shows are in a History.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from mailbridge.core.sla import DEADLINES
from mailbridge.core.states import INACTIVE_STATUSES, InboundState, OutboxState, TicketStatus
from mailbridge.db import tally
from mailbridge.db.models import (
    Article,
    Escalation,
    Event,
    InboundMessage,
    Outbox,
    Ticket,
)
from mailbridge.tickets.spam_purge import PURGED_EVENT

__all__ = ["Brief", "History", "Snapshot", "brief", "history", "snapshot"]


@dataclass(frozen=True, slots=True)
class Brief:
    """The two numbers a STATUS= line needs; both come from an index."""

    outbox_pending: int
    next_escalation_at: datetime | None


@dataclass(frozen=True, slots=True)
class History:
    """Recounts of every ticket, message and mail so far, for `mailbridge status`."""

    ingested: dict[tuple[str, str], int]  # (mailbox, kind) -> messages
    last_received: dict[str, datetime]  # mailbox -> when its newest message was stored
    outbox_sent: int
    tickets_by_status: dict[TicketStatus, int]
    escalations: dict[int, int]  # level -> fired


@dataclass(frozen=True, slots=True)
class Snapshot:
    inbound_by_state: dict[InboundState, int] = field(default_factory=dict)  # new, quarantined
    # (status, queue) -> tickets still in play (IN_PLAY), the queue as stored
    tickets_by_status_queue: dict[tuple[TicketStatus, str], int] = field(default_factory=dict)
    spam_purged: dict[str, int] = field(default_factory=dict)  # mailbox -> tickets purged
    outbox_by_state: dict[OutboxState, int] = field(default_factory=dict)  # pending, failed
    unanswered: int = 0
    overdue: int = 0
    oldest_unanswered_at: datetime | None = None
    oldest_pending_outbox_at: datetime | None = None
    next_escalation_at: datetime | None = None
    tallies: tally.Totals = field(default_factory=dict)  # the counters kept as things happen

    @property
    def spam(self) -> int:
        """Spam tickets held until their purge."""
        return sum(n for (s, _), n in self.tickets_by_status_queue.items() if s == SPAM)

    @property
    def quarantined(self) -> int:
        return self.inbound_by_state.get(InboundState.QUARANTINED, 0)

    def oldest_unanswered_age(self, now: datetime) -> float:
        """Seconds the longest-waiting customer has waited for a first answer; 0 if none."""
        return _age(self.oldest_unanswered_at, now)

    def oldest_pending_outbox_age(self, now: datetime) -> float:
        """Seconds the oldest mail still to be sent has waited; 0 if none."""
        return _age(self.oldest_pending_outbox_at, now)


SPAM = TicketStatus.SPAM
# The tickets a reading counts by status and queue: the backlog, and spam held. Resolved,
# closed and merged ones pile up for ever and are in the tally's counters instead.
IN_PLAY = (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.WAITING, SPAM)
# The states of messages and mails a reading counts; the few rows of each are in an index.
_WATCHED_INBOUND = (InboundState.NEW, InboundState.QUARANTINED)
_WATCHED_OUTBOX = (OutboxState.PENDING, OutboxState.FAILED)


def _age(since: datetime | None, now: datetime) -> float:
    return 0.0 if since is None else max((now - since).total_seconds(), 0.0)


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
    in_play = session.execute(
        select(Ticket.status, Ticket.queue, func.count())
        .where(Ticket.status.in_(IN_PLAY))
        .group_by(Ticket.status, Ticket.queue)
    ).all()
    unanswered, oldest, overdue = session.execute(
        select(
            func.count(),
            func.min(Ticket.created_at),
            func.count().filter(Ticket.first_response_due_at < now),
        ).where(*_unanswered())
    ).one()
    return Snapshot(
        inbound_by_state=_counted_states(session, InboundMessage.state, _WATCHED_INBOUND),
        tickets_by_status_queue={(status, queue): n for status, queue, n in in_play},
        spam_purged=spam_purged(session),
        outbox_by_state=_counted_states(session, Outbox.state, _WATCHED_OUTBOX),
        unanswered=unanswered or 0,
        overdue=overdue or 0,
        oldest_unanswered_at=oldest,
        oldest_pending_outbox_at=session.scalar(
            select(func.min(Outbox.created_at)).where(Outbox.state == OutboxState.PENDING)
        ),
        next_escalation_at=session.scalar(select(func.min(Ticket.next_escalation_at))),
        tallies=tally.totals(session),
    )


def _counted_states(session: Session, column: Any, states: tuple[Any, ...]) -> dict[Any, int]:
    found = session.execute(
        select(column, func.count()).where(column.in_(states)).group_by(column)
    ).all()
    return dict.fromkeys(states, 0) | dict(found)


def history(session: Session) -> History:
    """Messages by mailbox and kind, each mailbox's newest, mails sent, tickets by status
    and escalations by level: recounts of every row, which a scrape does not make."""
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
    newest = select(func.max(InboundMessage.id)).group_by(InboundMessage.mailbox)
    last_received = session.execute(
        select(InboundMessage.mailbox, InboundMessage.received_at).where(
            InboundMessage.id.in_(newest.scalar_subquery())
        )
    ).all()
    statuses = session.execute(select(Ticket.status, func.count()).group_by(Ticket.status)).all()
    escalations = session.execute(
        select(Escalation.level, func.count(Escalation.id))
        .where(Escalation.deadline.in_(DEADLINES))  # not a waiting cycle's reminder or close
        .group_by(Escalation.level)
    ).all()
    sent = session.scalar(select(func.count()).where(Outbox.state == OutboxState.SENT))
    return History(
        ingested={(mailbox, str(k)): n for mailbox, k, n in ingested},
        last_received=dict(last_received),
        outbox_sent=sent or 0,
        tickets_by_status=dict(statuses),
        escalations=dict(escalations),
    )
