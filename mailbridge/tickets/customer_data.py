"""Where the database holds an address: the tickets it took part in, and the rows outside
them that name it. The export (tickets/customer_export.py) and the erasure
(tickets/customer_erasure.py) both ask here, so what is exported is what is erased.

An address is found as the project stores it (core/addresses.py lower-cases the whole
addr-spec), exactly in the columns that hold one address, and in JSON and free text by a
case-blind search the caller confirms with `core.erasure.address_pattern`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, func, or_, select, text, union
from sqlalchemy.orm import Session

from mailbridge.core.erasure import mail_mentions
from mailbridge.db.models import (
    Article,
    Event,
    InboundMessage,
    Outbox,
    Ticket,
    TicketParticipant,
)
from mailbridge.db.search_index import INDEX_TABLE
from mailbridge.db.stored_bytes import raw_bytes, raw_held

__all__ = [
    "articles_mentioning",
    "conversations",
    "events_naming",
    "json_names",
    "ticketless_messages",
    "ticketless_outbox",
]

SCAN_ROWS = 200  # rows of raw mail read at a time when mail is searched in Python


def conversations(
    session: Session, address: str, among: Sequence[int] | None = None, *, lock: bool = False
) -> list[int]:
    """Ids of the tickets the address took part in, in order: as requester, as a
    participant (also one removed since), as the author or a recipient of an article, or as
    a recipient of mail sent on it. With `among`, only those (each search then reads only
    their rows, by their ticket's index); with `lock`, their rows are locked (PostgreSQL)
    for the caller's transaction."""

    def of(column: Any) -> ColumnElement[bool]:
        kept: ColumnElement[bool] = column.in_(among) if among is not None else column.is_not(None)
        return kept

    found = union(
        select(Ticket.id.label("id")).where(of(Ticket.id), Ticket.requester_address == address),
        select(TicketParticipant.ticket_id).where(
            of(TicketParticipant.ticket_id), TicketParticipant.address == address
        ),
        select(Article.ticket_id).where(
            of(Article.ticket_id),
            or_(
                Article.from_address == address,
                json_names(Article.to, address),
                json_names(Article.cc, address),
            ),
        ),
        select(Outbox.ticket_id).where(
            of(Outbox.ticket_id), json_names(Outbox.envelope_to, address)
        ),
    ).subquery()
    query = select(Ticket.id).where(Ticket.id.in_(select(found.c.id))).order_by(Ticket.id)
    if lock:
        # NO KEY UPDATE: a sender recording its answer (an event on the ticket) is not held up.
        query = query.with_for_update(key_share=True)
    return list(session.scalars(query))


def _json_forms(address: str) -> set[str]:
    """The address as a JSON string holds it: escaped (as the database drivers write
    JSON) and as written."""
    return {json.dumps(address), json.dumps(address, ensure_ascii=False)}


def json_names(column: Any, address: str) -> ColumnElement[bool]:
    """The JSON value holds the address as a whole string (an element of an address list)."""
    written = func.lower(cast(column, Text))
    return or_(*(written.contains(form, autoescape=True) for form in _json_forms(address)))


def _json_mentions(column: Any, address: str) -> ColumnElement[bool]:
    """The JSON value holds the address anywhere in a string: a superset, confirmed by the
    caller."""
    written = func.lower(cast(column, Text))
    forms = {form[1:-1] for form in _json_forms(address)}
    return or_(*(written.contains(form, autoescape=True) for form in forms))


def events_naming(session: Session, address: str, pattern: re.Pattern[str]) -> list[Event]:
    """Every audit event whose data names the address, in order."""
    events = session.scalars(
        select(Event).where(_json_mentions(Event.data, address)).order_by(Event.id)
    )
    return [e for e in events if pattern.search(json.dumps(e.data, ensure_ascii=False))]


def ticketless_messages(session: Session, pattern: re.Pattern[str]) -> list[int]:
    """Ids of stored mail that made no ticket (ignored, quarantined, not yet processed)
    whose bytes name the address. Searched as bytes: such mail may be hostile, and is
    parsed only in the parse worker, under its budget."""
    query = (
        select(InboundMessage.id, InboundMessage.raw, InboundMessage.raw_sha256)
        .where(InboundMessage.ticket_id.is_(None), raw_held())
        .order_by(InboundMessage.id)
        .execution_options(yield_per=SCAN_ROWS)
    )
    return [
        row.id
        for row in session.execute(query)
        if pattern.search(
            raw_bytes(session, row.raw, row.raw_sha256, f"inbound message {row.id}").decode(
                "latin-1"
            )
        )
    ]


def ticketless_outbox(
    session: Session, address: str, pattern: re.Pattern[str], tags: frozenset[str]
) -> list[int]:
    """Ids of mail about no ticket (answers to staff queries, digests) that went to the
    address or whose text, decoded, names it or one of the `tags` of its tickets."""
    query = (
        select(Outbox.id, Outbox.envelope_to, Outbox.raw)
        .where(Outbox.ticket_id.is_(None))
        .order_by(Outbox.id)
        .execution_options(yield_per=SCAN_ROWS)
    )
    return [
        outbox_id
        for outbox_id, envelope, raw in session.execute(query)
        if address in envelope or mail_mentions(raw, pattern, tags)
    ]


def articles_mentioning(session: Session, address: str, pattern: re.Pattern[str]) -> list[Article]:
    """Articles whose subject, text or HTML name the address, found through the search
    index (the address as a phrase of its words on SQLite, as one e-mail token on
    PostgreSQL) and confirmed in the text."""
    if session.get_bind().dialect.name == "postgresql":
        statement = text(
            f"SELECT article_id FROM {INDEX_TABLE} "
            "WHERE document @@ mailbridge_search_query(:address)"
        )
        found = session.scalars(statement, {"address": address}).all()
    else:
        phrase = '"' + address.replace('"', '""') + '"'
        statement = text(f"SELECT rowid FROM {INDEX_TABLE} WHERE {INDEX_TABLE} MATCH :phrase")
        found = session.scalars(statement, {"phrase": phrase}).all()
    if not found:
        return []
    articles = session.scalars(select(Article).where(Article.id.in_(found)).order_by(Article.id))
    return [
        article
        for article in articles
        if any(pattern.search(value or "") for value in _texts(article))
    ]


def _texts(article: Article) -> tuple[str | None, ...]:
    return (article.subject, article.text_body, article.html_body)
