"""Named queries. No policy here: each answers one question the jobs ask."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailbridge.db.models import Article, Event, InboundMessage, Outbox, Ticket


def ticket_ids_for_message_ids(session: Session, message_ids: Sequence[str]) -> dict[str, int]:
    """Message-ID -> ticket id, for ids we received or sent."""
    if not message_ids:
        return {}
    found: dict[str, int] = {}
    received = select(Article.message_id, Article.ticket_id).where(
        Article.message_id.in_(message_ids)
    )
    for message_id, ticket_id in session.execute(received):
        if message_id:
            found[message_id] = ticket_id
    sent = select(Outbox.message_id, Outbox.ticket_id).where(Outbox.message_id.in_(message_ids))
    for message_id, outbox_ticket in session.execute(sent):
        if outbox_ticket is not None:
            found.setdefault(message_id, outbox_ticket)
    return found


def delivered_twin(session: Session, inbound: InboundMessage) -> InboundMessage | None:
    """The same mail, already made part of a ticket through another of our mailboxes."""
    query = (
        select(InboundMessage)
        .where(
            InboundMessage.fingerprint == inbound.fingerprint,
            InboundMessage.id != inbound.id,
            InboundMessage.ticket_id.is_not(None),
        )
        .order_by(InboundMessage.id)
        .limit(1)
    )
    return session.scalars(query).one_or_none()


def ticket_by_number(session: Session, number: int) -> Ticket | None:
    return session.scalars(select(Ticket).where(Ticket.number == number)).one_or_none()


def participants(session: Session, ticket: Ticket) -> frozenset[str]:
    """Everyone who wrote on the ticket, and its requester."""
    query = select(Article.from_address).where(
        Article.ticket_id == ticket.id, Article.direction == "in"
    )
    return frozenset({ticket.requester_address, *session.scalars(query)})


def acknowledgements_since(session: Session, address: str, since: datetime) -> int:
    query = (
        select(func.count(Outbox.id))
        .join(Ticket, Ticket.id == Outbox.ticket_id)
        .where(
            Outbox.kind == "ack",
            Ticket.requester_address == address,
            Outbox.created_at >= since,
        )
    )
    return session.scalar(query) or 0


def tickets_due(session: Session, now: datetime, limit: int) -> Sequence[Ticket]:
    query = (
        select(Ticket)
        .where(Ticket.next_escalation_at <= now)
        .order_by(Ticket.next_escalation_at)
        .limit(limit)
    )
    return session.scalars(query).all()


def first_customer_text(session: Session, ticket_id: int) -> str:
    query = (
        select(Article.text_body)
        .where(Article.ticket_id == ticket_id, Article.direction == "in")
        .order_by(Article.id)
        .limit(1)
    )
    return session.scalar(query) or ""


def ticket_events(session: Session, ticket_id: int) -> Sequence[Event]:
    return session.scalars(
        select(Event).where(Event.ticket_id == ticket_id).order_by(Event.id)
    ).all()


def ticket_articles(session: Session, ticket_id: int) -> Sequence[Article]:
    return session.scalars(
        select(Article).where(Article.ticket_id == ticket_id).order_by(Article.id)
    ).all()
