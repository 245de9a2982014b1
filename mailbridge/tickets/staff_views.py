"""What a staff member sees of the queue by mail: the tickets of `#mine`, `#overdue`,
`#unassigned` and `#waiting`, and the conversation `#show` gives. Reads only; bounded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from mailbridge.core.states import INACTIVE_STATUSES, TicketStatus
from mailbridge.core.ticket_lines import MAX_LINES
from mailbridge.db.models import Article, AttachmentRecord, Ticket
from mailbridge.tickets.deadlines import open_deadlines

MAX_ARTICLES = 50  # the newest articles `#show` gives; the earlier ones are counted


@dataclass(frozen=True, slots=True)
class Listing:
    tickets: Sequence[Ticket]  # at most MAX_LINES
    left_out: int


def _open() -> ColumnElement[bool]:
    """Not done with and not spam: spam is in no one's queue."""
    return Ticket.status.not_in(INACTIVE_STATUSES)


def _overdue(now: datetime) -> ColumnElement[bool]:
    """A running deadline passed (tickets.deadlines.open_deadlines, in SQL)."""
    return and_(
        _open(),
        or_(
            and_(Ticket.first_responded_at.is_(None), Ticket.first_response_due_at <= now),
            and_(
                Ticket.resolved_at.is_(None),
                Ticket.waiting_since.is_(None),
                Ticket.resolution_due_at <= now,
            ),
        ),
    )


def _filter(kind: str, address: str, now: datetime) -> ColumnElement[bool]:
    if kind == "mine":
        return and_(_open(), func.lower(Ticket.assignee) == address.lower())
    if kind == "overdue":
        return _overdue(now)
    if kind == "unassigned":
        return and_(_open(), or_(Ticket.assignee.is_(None), Ticket.assignee == ""))
    if kind == "waiting":
        return Ticket.status == TicketStatus.WAITING
    raise ValueError(f"no listing {kind!r}")


def listing(session: Session, kind: str, address: str, now: datetime) -> Listing:
    """The tickets of `#kind` for the staff member at `address`, oldest first."""
    where = _filter(kind, address, now)
    query = select(Ticket).where(where).order_by(Ticket.created_at, Ticket.id).limit(MAX_LINES)
    tickets = session.scalars(query).all()
    total = len(tickets)
    if total == MAX_LINES:
        total = session.scalar(select(func.count(Ticket.id)).where(where)) or 0
    return Listing(tickets, total - len(tickets))


def running_deadline(ticket: Ticket) -> datetime | None:
    """The earliest deadline still running on the ticket."""
    running = [d for d in open_deadlines(ticket).values() if d is not None]
    return min(running) if running else None


@dataclass(frozen=True, slots=True)
class Conversation:
    articles: Sequence[Article]  # the newest MAX_ARTICLES, oldest first
    attachments: dict[int, list[str]]  # article id -> file names
    left_out: int


def conversation(session: Session, ticket: Ticket) -> Conversation:
    """The ticket's articles in order (the newest MAX_ARTICLES) and their files' names."""
    total = session.scalar(select(func.count(Article.id)).where(Article.ticket_id == ticket.id))
    newest = session.scalars(
        select(Article)
        .where(Article.ticket_id == ticket.id)
        .order_by(Article.id.desc())
        .limit(MAX_ARTICLES)
    ).all()
    articles = list(reversed(newest))
    names: dict[int, list[str]] = defaultdict(list)
    if articles:
        rows = session.execute(
            select(AttachmentRecord.article_id, AttachmentRecord.filename)
            .where(AttachmentRecord.article_id.in_([a.id for a in articles]))
            .order_by(AttachmentRecord.id)
        )
        for article_id, filename in rows:
            names[article_id].append(filename or "(no name)")
    return Conversation(articles, dict(names), (total or 0) - len(articles))
