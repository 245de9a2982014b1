"""The spam purge: spam tickets marked longer ago than `[spam] purge_after` are deleted
whole (the ticket, its articles and so their search index rows, attachments, tags,
participants, escalations, acknowledgement rows, outbox mails, events and raw mail), in
batches of BATCH tickets, each its own transaction. One event without a ticket counts what
a batch removed, never what the mail said. Spam is the exception to "retention removes
bytes, never the record" (docs/architecture.md).

A ticket goes only while it is spam: one marked not spam stays, however long ago it was
marked. Tickets merged into a purged one go with it (their mail is in it). Quarantined
mail stays for a person, and so does raw mail an article of another ticket was made from
(after a split): both lose only their link to the ticket.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, select, tuple_, update
from sqlalchemy.orm import Session

from mailbridge.app import App
from mailbridge.core.states import InboundState, TicketStatus
from mailbridge.db import queries
from mailbridge.db.models import (
    Acknowledgement,
    AddressState,
    Article,
    AttachmentRecord,
    Base,
    Escalation,
    Event,
    InboundMessage,
    Outbox,
    Ticket,
    TicketParticipant,
    TicketTag,
)
from mailbridge.db.stored_bytes import FILE_STORAGE, forget
from mailbridge.tickets.retention import BATCH

__all__ = ["PURGED_EVENT", "SpamPurge", "purge_spam"]

PURGED_EVENT = "spam_purged"  # the event, without a ticket, each batch leaves


@dataclass(frozen=True, slots=True)
class SpamPurge:
    """What a purge removed (or, in a dry run, would remove): rows, per kind."""

    cutoff: datetime | None = None  # spam marked before this goes
    tickets: int = 0
    articles: int = 0
    messages: int = 0  # raw mail as it arrived
    attachments: int = 0
    outbox: int = 0  # mails queued or sent about the tickets
    events: int = 0  # the tickets' own audit events
    batches: int = 0

    @property
    def anything(self) -> bool:
        return self.tickets > 0

    def __add__(self, other: SpamPurge) -> SpamPurge:
        return SpamPurge(
            self.cutoff or other.cutoff,
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)[1:]),
        )

    def counts(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)[1:-1]}

    def summary(self) -> str:
        day = self.cutoff.date().isoformat() if self.cutoff else "-"
        return (
            f"{self.tickets} spam ticket(s) marked before {day}: {self.articles} article(s), "
            f"{self.messages} raw message(s), {self.attachments} attachment(s), "
            f"{self.outbox} outgoing mail(s), {self.events} event(s)"
        )


def purge_spam(app: App, *, dry_run: bool = False, now: datetime | None = None) -> SpamPurge:
    """Delete the spam whose time is up (or, with dry_run, count what would go)."""
    cutoff = (now or app.clock.now()) - app.config.spam.purge_after
    total = SpamPurge(cutoff)
    after: tuple[datetime, int] | None = None
    while True:
        with app.transaction() as session:
            batch = _spam_before(session, cutoff, after, lock=not dry_run)
            if not batch:
                break
            done, mailboxes = _purge_batch(session, [ticket_id for _, ticket_id in batch], dry_run)
            if not dry_run:
                data = {"spam_before": cutoff.isoformat(), **done.counts(), "mailboxes": mailboxes}
                queries.insert_event(session, None, app.clock.now(), PURGED_EVENT, data)
        total += done
        after = batch[-1]
    return total


def _spam_before(
    session: Session, cutoff: datetime, after: tuple[datetime, int] | None, *, lock: bool
) -> Sequence[tuple[datetime, int]]:
    """The next batch of (spam_at, id) of spam marked before the cutoff, in index order.
    Locked (PostgreSQL) so a ticket marked not spam meanwhile is read again, and skipped."""
    query = (
        select(Ticket.spam_at, Ticket.id)
        .where(Ticket.spam_at < cutoff, Ticket.status == TicketStatus.SPAM)
        .order_by(Ticket.spam_at, Ticket.id)
        .limit(BATCH)
    )
    if after is not None:
        query = query.where(tuple_(Ticket.spam_at, Ticket.id) > tuple_(*after))
    if lock:
        query = query.with_for_update(skip_locked=True)
    return [(spam_at, ticket_id) for spam_at, ticket_id in session.execute(query) if spam_at]


def _with_merged(session: Session, ticket_ids: Sequence[int]) -> list[int]:
    """The tickets and every ticket merged into them, along each merge chain."""
    found, frontier = set(ticket_ids), list(ticket_ids)
    while frontier:
        merged = session.scalars(
            select(Ticket.id).where(
                Ticket.merged_into_id.in_(frontier), Ticket.status == TicketStatus.MERGED
            )
        ).all()
        frontier = [ticket_id for ticket_id in merged if ticket_id not in found]
        found.update(frontier)
    return sorted(found)


def _purge_batch(
    session: Session, spam_ids: Sequence[int], dry_run: bool
) -> tuple[SpamPurge, dict[str, int]]:
    """Delete one batch, children before parents (PostgreSQL checks every foreign key);
    pointers from rows that stay are cleared first. Returns the counts and the tickets
    per mailbox (what /metrics adds back to the tickets opened)."""
    group = _with_merged(session, spam_ids)
    per_mailbox = select(Ticket.mailbox, func.count()).where(Ticket.id.in_(group))
    mailboxes = {mailbox: n for mailbox, n in session.execute(per_mailbox.group_by(Ticket.mailbox))}
    articles = select(Article.id).where(Article.ticket_id.in_(group))
    outbox = Outbox.ticket_id.in_(group) | Outbox.article_id.in_(articles)
    raw = InboundMessage.ticket_id.in_(group)
    kept = (InboundMessage.state == InboundState.QUARANTINED) | exists().where(
        Article.inbound_message_id == InboundMessage.id, Article.ticket_id.not_in(group)
    )
    by_ticket = [
        ("events" if model is Event else model.__tablename__, model, model.ticket_id.in_(group))
        for model in (Escalation, Acknowledgement, Event, TicketTag, TicketParticipant)
    ]
    if not dry_run:
        # The files of the rows deleted go after the commit, unless another row names them.
        attached = AttachmentRecord.article_id.in_(articles)
        forget(
            session,
            session.scalars(
                select(AttachmentRecord.sha256).where(
                    attached, AttachmentRecord.storage == FILE_STORAGE
                )
            ),
        )
        forget(session, session.scalars(select(InboundMessage.raw_sha256).where(raw & ~kept)))
        session.execute(
            update(AddressState)
            .where(AddressState.last_outbox_id.in_(select(Outbox.id).where(outbox)))
            .values(last_outbox_id=None)
        )
    counted: dict[str, int] = {}
    steps: list[tuple[str, type[Base], ColumnElement[bool]]] = [
        ("outbox", Outbox, outbox),
        ("attachments", AttachmentRecord, AttachmentRecord.article_id.in_(articles)),
        ("articles", Article, Article.ticket_id.in_(group)),
        ("messages", InboundMessage, raw & ~kept),
        *by_ticket,
    ]
    for name, model, where in steps:
        counted[name] = _remove(session, model, where, dry_run)
    if not dry_run:
        session.execute(update(InboundMessage).where(raw).values(ticket_id=None))
        session.execute(
            update(Ticket)
            .where(Ticket.merged_into_id.in_(group), Ticket.id.not_in(group))
            .values(merged_into_id=None)
        )
    tickets = _remove(session, Ticket, Ticket.id.in_(group), dry_run)
    reported = {f.name: counted[f.name] for f in fields(SpamPurge)[2:-1]}
    return SpamPurge(None, tickets, **reported, batches=1), mailboxes


def _remove(session: Session, model: type[Base], where: ColumnElement[bool], dry_run: bool) -> int:
    """Delete the rows (or, in a dry run, count them); how many."""
    if dry_run:
        return session.scalar(select(func.count()).select_from(model).where(where)) or 0
    result: Any = session.execute(
        delete(model).where(where).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)
