"""The FAQ's use, read from the database: the answers acknowledgements offered in a period
with what followed on their tickets (`mailbridge faq stats`, decided by core/faq_stats.py),
and the opening mails of the period that were offered none (`mailbridge faq gaps`, grouped
by core/faq_gaps.py).

An offer is a `faq_offered` event (inbound/acknowledge.py); the customer's "solved" a
`resolved_by_customer` event (inbound/solved.py), as the service report counts them
(reports/figures.py). A staff answer is the ticket's first response.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.orm import Session

from mailbridge.app import App
from mailbridge.config import Config
from mailbridge.core.faq_gaps import Question
from mailbridge.core.faq_stats import Offer
from mailbridge.core.parse import normalize_subject
from mailbridge.core.reply_trim import trim_reply
from mailbridge.core.states import AuthorKind
from mailbridge.db.models import Article, Event, Ticket
from mailbridge.reports.figures import LEFT_OUT

__all__ = ["QUESTION_CHARS", "offers_since", "quiet_window", "unanswered_questions"]

QUESTION_CHARS = 300  # of a question's own words compared: each pair costs time
_READ_CHARS = QUESTION_CHARS * 10  # of its stored text, before the quote is cut


def _from_customer() -> ColumnElement[bool]:
    return and_(Article.direction == "in", Article.author_kind == AuthorKind.CUSTOMER)


def quiet_window(config: Config, queue: str) -> timedelta:
    """How long a customer's silence after an offer must last to count: the queue's
    `close_after`, or, where tickets do not close themselves, `rating_lifetime` (as the
    links of a resolution mail do, tickets/rating.py)."""
    _remind, close = config.tickets.waiting_times(queue)
    return close or config.tickets.rating_lifetime


def offers_since(app: App, since: datetime, now: datetime) -> list[Offer]:
    """Every offer made from `since` to `now`, oldest first, with what followed it."""
    offered = (Event.type == "faq_offered", Event.at >= since, Event.at <= now)
    tickets = select(Event.ticket_id).where(*offered)
    with app.sessions() as session:
        rows = session.execute(
            select(Event.ticket_id, Event.at, Event.data, Ticket.queue, Ticket.first_responded_at)
            .join(Ticket, Ticket.id == Event.ticket_id)
            .where(*offered)
            .order_by(Event.id)
        ).all()
        solved = _first_moments(
            session,
            select(Event.ticket_id, func.min(Event.at))
            .where(
                Event.type == "resolved_by_customer",
                Event.at >= since,
                Event.ticket_id.in_(tickets),
            )
            .group_by(Event.ticket_id),
        )
        first = (
            select(Article.ticket_id, func.min(Article.id).label("first_id"))
            .where(_from_customer(), Article.ticket_id.in_(tickets))
            .group_by(Article.ticket_id)
            .subquery()
        )
        wrote = _first_moments(  # the customer's next mail after the one the offer answered
            session,
            select(Article.ticket_id, func.min(Article.created_at))
            .join(first, first.c.ticket_id == Article.ticket_id)
            .where(_from_customer(), Article.id > first.c.first_id)
            .group_by(Article.ticket_id),
        )
    return [
        Offer(
            files=_files(data),
            offered_at=at,
            quiet_window=quiet_window(app.config, queue),
            solved_at=solved.get(ticket_id),
            answered_at=responded,
            wrote_at=wrote.get(ticket_id),
        )
        for ticket_id, at, data, queue, responded in rows
    ]


def _first_moments(session: Session, query: Select[Any, Any]) -> dict[int, datetime]:
    return {
        ticket_id: moment
        for ticket_id, moment in session.execute(query)
        if ticket_id is not None and moment is not None
    }


def _files(data: dict[str, Any]) -> tuple[str, ...]:
    offered = data.get("offered")
    if not isinstance(offered, list):
        return ()
    return tuple(
        o["file"] for o in offered if isinstance(o, dict) and isinstance(o.get("file"), str)
    )


def unanswered_questions(app: App, since: datetime, limit: int) -> tuple[list[Question], int]:
    """The opening mails of the tickets that came in from `since` and were offered no FAQ
    answer (spam and merged tickets left out), the `limit` most recent first; and how many
    there are in all."""
    offered = (
        select(Event.id).where(Event.ticket_id == Ticket.id, Event.type == "faq_offered").exists()
    )
    candidates = select(Ticket.id).where(
        Ticket.created_at >= since, Ticket.status.not_in(LEFT_OUT), ~offered
    )
    opening = (
        select(Article.ticket_id, func.min(Article.id).label("article_id"))
        .where(_from_customer(), Article.ticket_id.in_(candidates))
        .group_by(Article.ticket_id)
        .subquery()
    )
    query = (
        select(
            Ticket.number,
            Ticket.language,
            Article.subject,
            func.substr(Article.text_body, 1, _READ_CHARS),
        )
        .join(opening, opening.c.ticket_id == Ticket.id)
        .join(Article, Article.id == opening.c.article_id)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(limit)
    )
    with app.sessions() as session:
        total = session.scalar(select(func.count()).select_from(opening)) or 0
        rows = session.execute(query).all()
    questions = [
        Question(
            number or 0,
            normalize_subject(subject or ""),
            trim_reply(text or "")[:QUESTION_CHARS],
            language,
        )
        for number, language, subject, text in rows
    ]
    return questions, int(total)
