"""What a customer erasure changes outside the tickets the address took part in (those go
whole, tickets/erasure.py): every other row that names the address.

- audit events naming it (a requester changed away from it, a sender rule): their text is
  scrubbed as an erased ticket's is;
- mail about no ticket (answers to staff queries, digests) sent to it or naming it or one
  of its tickets: its bytes go; stored mail that made no ticket and names it: its bytes go;
- another ticket's article that names it in its text: the address gives way to the
  pseudonym there, and the raw mail and sent mail holding that text lose their bytes;
- the address as assignee, as who added a participant, in acknowledgement rows: the
  pseudonym; its bounce record, its own sender rule and staff record: deleted.

Each step finds what it would change and changes it unless `dry_run`. Runs inside the
caller's transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from mailbridge.core.erasure import (
    PSEUDONYM_DOMAIN,
    mail_mentions,
    recipe_mentions,
    scrub_event_data,
)
from mailbridge.core.states import InboundState, OutboxState
from mailbridge.db.models import (
    Acknowledgement,
    AddressState,
    Article,
    Base,
    Event,
    InboundMessage,
    Outbox,
    SenderRule,
    StaffState,
    Ticket,
    TicketParticipant,
)
from mailbridge.db.stored_bytes import forget
from mailbridge.tickets.customer_data import (
    articles_mentioning,
    events_naming,
    ticketless_messages,
    ticketless_outbox,
)
from mailbridge.tickets.erasure import (
    ERASED_REASON,
    WITHDRAWN,
    Scrub,
    Tally,
    changed,
    write_rows,
)

__all__ = ["scrub_elsewhere"]


@dataclass(frozen=True)
class _Pass:
    session: Session
    scrub: Scrub
    address: str
    pattern: re.Pattern[str]  # the address
    tags: frozenset[str]  # of the tickets erased whole, as subjects carry them
    skip: frozenset[int]  # the tickets erased whole
    dry_run: bool
    tally: Tally

    def write(self, model: Any, rows: list[dict[str, Any]]) -> None:
        write_rows(self.session, model, rows, self.tally, dry_run=self.dry_run)

    def delete(self, model: type[Base], where: Any) -> None:
        count = self.session.scalar(select(func.count()).select_from(model).where(where)) or 0
        self.tally[model.__tablename__] += count
        if count and not self.dry_run:
            self.session.execute(delete(model).where(where))


def scrub_elsewhere(
    session: Session,
    scrub: Scrub,
    conversations: frozenset[int],
    tags: list[str],
    *,
    dry_run: bool,
) -> Tally:
    """Change what names the address outside `conversations` (whose `tags`, as the
    subject carries them, mark the mail that lists them)."""
    assert scrub.address is not None and scrub.pattern is not None
    tally = Tally()
    work = _Pass(
        session, scrub, scrub.address, scrub.pattern, frozenset(tags), conversations, dry_run, tally
    )
    for step in _STEPS:
        step(work)
    return tally


def _events(work: _Pass) -> None:
    edits = []
    for event in events_naming(work.session, work.address, work.pattern):
        if event.ticket_id in work.skip:
            continue  # scrubbed with its ticket
        scrubbed = scrub_event_data(event.data, work.pattern, work.scrub.pseudonym)
        if scrubbed != event.data:
            edits.append({"id": event.id, "data": scrubbed})
    work.write(Event, edits)


def _unticketed_outbox(work: _Pass) -> None:
    ids = ticketless_outbox(work.session, work.address, work.pattern, work.tags)
    _blank_outbox(work, ids, withdraw=True)


def _blank_outbox(work: _Pass, ids: list[int], *, withdraw: bool) -> None:
    """Mail whose bytes go; still waiting, it is withdrawn (`withdraw`) or left to go."""
    if not ids:
        return
    rows = work.session.execute(
        select(Outbox.id, Outbox.state, Outbox.envelope_to, Outbox.recipients, Outbox.last_error)
        .where(Outbox.id.in_(ids))
        .order_by(Outbox.id)
        .with_for_update(key_share=True)
    )
    edits = []
    for outbox_id, state, envelope, recipients, error in rows:
        pending = state == OutboxState.PENDING
        if pending and not withdraw:
            continue
        row: dict[str, Any] = {"id": outbox_id, "raw": b"", "recipe": None}
        if pending:
            row |= {"state": OutboxState.FAILED, "last_error": WITHDRAWN}
        else:
            row |= changed({"last_error": error}, work.scrub.text)
        row |= changed({"envelope_to": envelope, "recipients": recipients}, work.scrub.addresses)
        edits.append(row)
    work.write(Outbox, edits)


def _unticketed_messages(work: _Pass) -> None:
    ids = ticketless_messages(work.session, work.pattern)
    _blank_messages(work, ids, hers=True)


def _blank_messages(work: _Pass, ids: list[int], *, hers: bool) -> None:
    """Stored mail whose bytes go; one not settled yet is settled as ignored. Her own mail
    (`hers`) gets a keyed Message-ID too; another's keeps its own."""
    if not ids:
        return
    rows = work.session.execute(
        select(
            InboundMessage.id,
            InboundMessage.state,
            InboundMessage.message_id,
            InboundMessage.raw_sha256,
        ).where(InboundMessage.id.in_(ids))
    ).all()
    if not work.dry_run:  # their files go after the commit, unless another row names them
        forget(work.session, (row.raw_sha256 for row in rows))
    edits = []
    for message_id, state, mail_id, _ in rows:
        row: dict[str, Any] = {"id": message_id, "raw": b"", "raw_sha256": None}
        row["last_error"] = None
        if state in (InboundState.QUARANTINED, InboundState.NEW):
            row |= {"state": InboundState.IGNORED, "reason": ERASED_REASON}
        if hers:
            row |= changed({"message_id": mail_id}, work.scrub.message_id)
        edits.append(row)
    work.write(InboundMessage, edits)


def _mentions(work: _Pass) -> None:
    """Other tickets' articles that name the address: replaced in the text; the mail they
    came from, and the mail sent on their tickets that names it, lose their bytes."""
    found = [
        article
        for article in articles_mentioning(work.session, work.address, work.pattern)
        if article.ticket_id not in work.skip
    ]
    if not found:
        return
    replace = work.scrub.text
    edits = [
        {"id": a.id, "subject": replace(a.subject), "text_body": replace(a.text_body)}
        | {"html_body": replace(a.html_body)}
        for a in found
    ]
    work.write(Article, edits)
    made_from = [a.inbound_message_id for a in found if a.inbound_message_id]
    _blank_messages(work, made_from, hers=False)
    tickets = sorted({a.ticket_id for a in found})
    subjects = work.session.execute(
        select(Ticket.id, Ticket.subject).where(Ticket.id.in_(tickets))
    ).all()
    work.write(
        Ticket,
        [{"id": i, "subject": replace(s)} for i, s in subjects if work.pattern.search(s or "")],
    )
    sent = work.session.execute(
        select(Outbox.id, Outbox.raw, Outbox.recipe).where(Outbox.ticket_id.in_(tickets))
    ).all()
    named = [
        i
        for i, raw, recipe in sent
        if mail_mentions(raw, work.pattern) or recipe_mentions(recipe, work.pattern)
    ]
    _blank_outbox(work, named, withdraw=False)


def _roles(work: _Pass) -> None:
    """The address as assignee, as who added a participant, in acknowledgement rows (of
    other tickets, or of none)."""
    pseudonym, skip = work.scrub.pseudonym, work.skip
    assigned = work.session.scalars(select(Ticket.id).where(Ticket.assignee == work.address))
    work.write(Ticket, [{"id": i, "assignee": pseudonym} for i in assigned if i not in skip])
    added = [
        (ticket_id, address)
        for ticket_id, address in work.session.execute(
            select(TicketParticipant.ticket_id, TicketParticipant.address).where(
                TicketParticipant.added_by == work.address
            )
        )
        if ticket_id not in skip
    ]
    work.tally["ticket_participant"] += len(added)
    if not work.dry_run:
        for ticket_id, address in added:
            work.session.execute(
                update(TicketParticipant)
                .where(
                    TicketParticipant.ticket_id == ticket_id, TicketParticipant.address == address
                )
                .values(added_by=pseudonym)
            )
    acknowledged = work.session.execute(
        select(Acknowledgement.id, Acknowledgement.ticket_id).where(
            Acknowledgement.address == work.address
        )
    )
    work.write(
        Acknowledgement,
        [
            {"id": i, "address": pseudonym, "domain": PSEUDONYM_DOMAIN}
            for i, ticket_id in acknowledged
            if ticket_id not in skip
        ],
    )


def _records(work: _Pass) -> None:
    """Its bounce record, its own sender rule and staff record go; a sender rule another
    address has that names it in its note or as its author keeps the rule."""
    work.delete(AddressState, AddressState.address == work.address)
    work.delete(StaffState, StaffState.address == work.address)
    work.delete(SenderRule, SenderRule.pattern == work.address)
    rules = work.session.execute(
        select(SenderRule.pattern, SenderRule.created_by, SenderRule.note).where(
            SenderRule.pattern != work.address
        )
    )
    edits = []
    for pattern, author, note in rules:
        row: dict[str, Any] = changed({"note": note}, work.scrub.text)
        if author == work.address:
            row["created_by"] = work.scrub.pseudonym
        if row:
            edits.append({"pattern": pattern, **row})
    work.write(SenderRule, edits)


_STEPS: tuple[Callable[[_Pass], None], ...] = (
    _events,
    _unticketed_outbox,
    _unticketed_messages,
    _mentions,
    _roles,
    _records,
)
