"""Erasing the content of tickets while keeping their record: the one code path of the
customer erasure (`mailbridge customer erase`, tickets/customer_erasure.py) and of the
retention policy's `erase_content_after` (tickets/content_retention.py).

A ticket's content is what people wrote and sent: its subject, its articles' subjects,
text and HTML, attachments (bytes, names, digests), the raw mail its articles came from,
the mail sent about it, and the text of its audit events. Its record stays: number,
status, queue, mailbox, priority, assignee, tags, every timestamp and deadline, the rows of
articles, attachments (type and size), mail and events, so the reports count it as before
(docs/architecture.md, "Erasure"). The search index follows the articles by its triggers.

A customer erasure (`Scrub.address` set) also puts the pseudonym in place of the address
(requester, participant, author, recipients, acknowledgement rows), clears that person's
display name, replaces the Message-IDs of the mail (ours, "mb.…", stay), erases quarantined
mail and withdraws mail still waiting to go. Retention keeps who wrote (the record) and
leaves quarantined and waiting mail alone, as `purge_after` does.

Each step finds what it would change and changes it unless `dry_run`; the counts are rows
per table. Runs inside the caller's transaction.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session

from mailbridge.core.compose import MESSAGE_ID_PREFIX
from mailbridge.core.erasure import (
    ERASED,
    PSEUDONYM_DOMAIN,
    address_pattern,
    erased_message_id,
    replace_address,
    replace_in_json,
    scrub_event_data,
)
from mailbridge.core.states import InboundState, OutboxState
from mailbridge.db.models import (
    Acknowledgement,
    Article,
    AttachmentRecord,
    Event,
    InboundMessage,
    Outbox,
    Ticket,
    TicketParticipant,
)
from mailbridge.db.stored_bytes import FILE_STORAGE, forget

__all__ = [
    "CONTENT_ERASED",
    "ERASED_STORAGE",
    "WITHDRAWN",
    "Scrub",
    "Tally",
    "changed",
    "erase_content",
    "write_rows",
]

CONTENT_ERASED = "content_erased"  # the event each ticket whose content went gets
ERASED_STORAGE = "erased"  # attachment.storage of an attachment whose bytes went
WITHDRAWN = "withdrawn: the recipient's data was erased"  # outbox.last_error
ERASED_REASON = "erased"  # inbound_message.reason of a message erased before it was settled

Tally = Counter[str]  # rows changed (or, in a dry run, to change) per table


@dataclass(frozen=True)
class Scrub:
    """What erasing a ticket's content also does. Without `address`: nothing about who
    wrote changes (retention). With it: that address becomes `pseudonym`, and message ids
    become keyed ones (`key`)."""

    reason: str  # "customer erasure" | "retention", in each ticket's event
    address: str | None = None
    pseudonym: str = ""
    key: bytes = b""
    pattern: re.Pattern[str] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.address:
            object.__setattr__(self, "pattern", address_pattern(self.address))

    def text(self, value: str | None) -> str | None:
        """Free text with the address replaced (unchanged without one)."""
        if value is None or self.pattern is None:
            return value
        return replace_address(value, self.pattern, self.pseudonym)

    def addresses(self, value: Any) -> Any:
        """A JSON value (address lists, recipient results) with the address replaced."""
        return (
            value if self.pattern is None else replace_in_json(value, self.pattern, self.pseudonym)
        )

    def message_id(self, value: str | None) -> str | None:
        """Someone's Message-ID becomes a keyed one; ours stay (they hold only a number)."""
        if value is None or self.address is None or value.startswith(MESSAGE_ID_PREFIX):
            return value
        return erased_message_id(self.key, value)


def erase_content(
    session: Session, ticket_ids: Sequence[int], scrub: Scrub, now: datetime, *, dry_run: bool
) -> Tally:
    """Erase the content of these tickets (or count what would change); one event per
    ticket says so, naming nobody."""
    tally: Tally = Counter()
    if not ticket_ids:
        return tally
    articles = session.scalars(select(Article.id).where(Article.ticket_id.in_(ticket_ids))).all()
    batch = _Batch(session, ticket_ids, articles, scrub, now, dry_run, tally)
    for step in _STEPS:
        step(batch)
    if not dry_run:
        data = {"reason": scrub.reason}
        session.execute(
            insert(Event),
            [{"ticket_id": i, "at": now, "type": CONTENT_ERASED, "data": data} for i in ticket_ids],
        )
    return tally


@dataclass(frozen=True)
class _Batch:
    session: Session
    tickets: Sequence[int]
    articles: Sequence[int]
    scrub: Scrub
    now: datetime
    dry_run: bool
    tally: Tally

    def by_key(self, model: Any, rows: list[dict[str, Any]]) -> None:
        write_rows(self.session, model, rows, self.tally, dry_run=self.dry_run)


def write_rows(
    session: Session, model: Any, rows: list[dict[str, Any]], tally: Tally, *, dry_run: bool
) -> None:
    """Count the changed rows under their table and, unless a dry run, write them (bulk
    UPDATE by primary key)."""
    tally[model.__tablename__] += len(rows)
    if rows and not dry_run:
        session.execute(update(model), rows)


def _tickets(batch: _Batch) -> None:
    scrub, edits = batch.scrub, []
    rows = batch.session.execute(
        select(
            Ticket.id,
            Ticket.subject,
            Ticket.requester_address,
            Ticket.assignee,
        ).where(Ticket.id.in_(batch.tickets))
    )
    for ticket_id, subject, requester, assignee in rows:
        row: dict[str, Any] = {"id": ticket_id, "content_erased_at": batch.now}
        if subject != ERASED:
            row["subject"] = ERASED
        if scrub.address is not None and requester == scrub.address:
            row |= {"requester_address": scrub.pseudonym, "requester_name": ""}
        if scrub.address is not None and assignee == scrub.address:
            row["assignee"] = scrub.pseudonym
        edits.append(row)
    batch.by_key(Ticket, edits)


def _participants(batch: _Batch) -> None:
    scrub = batch.scrub
    if scrub.address is None:
        return
    mine = TicketParticipant.ticket_id.in_(batch.tickets)
    counted = select(func.count()).select_from(TicketParticipant)
    own = mine & (TicketParticipant.address == scrub.address)
    added = mine & (TicketParticipant.added_by == scrub.address)
    batch.tally["ticket_participant"] += batch.session.scalar(counted.where(own | added)) or 0
    if not batch.dry_run:
        batch.session.execute(
            update(TicketParticipant).where(own).values(address=scrub.pseudonym, name="")
        )
        batch.session.execute(
            update(TicketParticipant).where(added).values(added_by=scrub.pseudonym)
        )


def _articles(batch: _Batch) -> None:
    scrub, edits = batch.scrub, []
    rows = batch.session.execute(
        select(
            Article.id,
            (Article.subject != "") | (Article.text_body != "") | Article.html_body.is_not(None),
            Article.defects,
            Article.from_address,
            Article.to,
            Article.cc,
            Article.message_id,
            Article.in_reply_to,
        ).where(Article.id.in_(batch.articles))
    )
    for article_id, has_text, defects, author, to, cc, message_id, in_reply_to in rows:
        row: dict[str, Any] = {"id": article_id}
        if has_text or defects:
            row |= {"subject": "", "text_body": "", "html_body": None, "defects": []}
        if scrub.address is not None:
            if author == scrub.address:
                row |= {"from_address": scrub.pseudonym, "from_name": ""}
            row |= changed({"to": to, "cc": cc}, scrub.addresses)
            row |= changed({"message_id": message_id, "in_reply_to": in_reply_to}, scrub.message_id)
        if len(row) > 1:
            edits.append(row)
    batch.by_key(Article, edits)


def changed(values: dict[str, Any], change: Callable[[Any], Any]) -> dict[str, Any]:
    """The values `change` changes, changed."""
    return {key: new for key, value in values.items() if (new := change(value)) != value}


def _attachments(batch: _Batch) -> None:
    held = (
        AttachmentRecord.data.is_not(None)
        | AttachmentRecord.filename.is_not(None)
        | (AttachmentRecord.sha256 != "")
        | AttachmentRecord.content_id.is_not(None)
    )
    rows = batch.session.execute(
        select(AttachmentRecord.id, AttachmentRecord.storage, AttachmentRecord.sha256).where(
            AttachmentRecord.article_id.in_(batch.articles), held
        )
    ).all()
    blank = {"data": None, "filename": None, "sha256": "", "content_id": None}
    batch.by_key(
        AttachmentRecord, [{"id": i, **blank, "storage": ERASED_STORAGE} for i, _, _ in rows]
    )
    if not batch.dry_run:  # a file goes once no other ticket's row names it
        forget(batch.session, (sha for _, storage, sha in rows if storage == FILE_STORAGE))


def _inbound(batch: _Batch) -> None:
    """The raw mail of the tickets, and of their articles (a split moves an article, not
    its message)."""
    scrub, edits = batch.scrub, []
    made_from = select(Article.inbound_message_id).where(Article.id.in_(batch.articles))
    rows = batch.session.execute(
        select(
            InboundMessage.id,
            func.length(InboundMessage.raw),
            InboundMessage.state,
            InboundMessage.last_error,
            InboundMessage.reason,
            InboundMessage.message_id,
            InboundMessage.raw_sha256,
        ).where(or_(InboundMessage.ticket_id.in_(batch.tickets), InboundMessage.id.in_(made_from)))
    )
    let_go = []
    for message_id, size, state, error, reason, mail_id, sha256 in rows:
        unsettled = state in (InboundState.QUARANTINED, InboundState.NEW)
        if unsettled and scrub.address is None:
            continue  # retention leaves quarantined mail for a person
        row: dict[str, Any] = {"id": message_id}
        if size or error is not None or sha256 is not None:
            row |= {"raw": b"", "raw_sha256": None, "last_error": None}
            let_go.append(sha256)
        if unsettled:
            row |= {"state": InboundState.IGNORED, "reason": ERASED_REASON}
        else:
            row |= changed({"reason": reason}, scrub.text)
        row |= changed({"message_id": mail_id}, scrub.message_id)
        if len(row) > 1:
            edits.append(row)
    batch.by_key(InboundMessage, edits)
    if not batch.dry_run:
        forget(batch.session, let_go)


def _outbox(batch: _Batch) -> None:
    """Mail sent about the tickets: its bytes go. Mail still waiting is withdrawn by a
    customer erasure (it would go to, or say, what is being erased) and left to go by
    retention. A row a sender holds (PostgreSQL) is waited for."""
    scrub, edits = batch.scrub, []
    mine = or_(Outbox.ticket_id.in_(batch.tickets), Outbox.article_id.in_(batch.articles))
    rows = batch.session.execute(
        select(
            Outbox.id,
            Outbox.state,
            func.length(Outbox.raw),
            Outbox.recipe.is_not(None),
            Outbox.envelope_to,
            Outbox.recipients,
            Outbox.last_error,
        )
        .where(mine)
        .order_by(Outbox.id)
        .with_for_update(key_share=True)
    )
    for outbox_id, state, size, to_render, envelope, recipients, error in rows:
        pending = state == OutboxState.PENDING
        if pending and scrub.address is None:
            continue
        row: dict[str, Any] = {"id": outbox_id}
        if size:
            row["raw"] = b""
        if to_render:  # its values hold the ticket's words as much as bytes would
            row["recipe"] = None
        if pending:
            row |= {"state": OutboxState.FAILED, "last_error": WITHDRAWN}
        else:
            row |= changed({"last_error": error}, scrub.text)
        row |= changed({"envelope_to": envelope, "recipients": recipients}, scrub.addresses)
        if len(row) > 1:
            edits.append(row)
    batch.by_key(Outbox, edits)


def _events(batch: _Batch) -> None:
    scrub, edits = batch.scrub, []
    rows = batch.session.execute(
        select(Event.id, Event.data).where(
            Event.ticket_id.in_(batch.tickets), Event.type != CONTENT_ERASED
        )
    )
    for event_id, data in rows:
        scrubbed = scrub_event_data(data or {}, scrub.pattern, scrub.pseudonym)
        if scrubbed != data:
            edits.append({"id": event_id, "data": scrubbed})
    batch.by_key(Event, edits)


def _acknowledgements(batch: _Batch) -> None:
    scrub = batch.scrub
    if scrub.address is None:
        return
    ids = batch.session.scalars(
        select(Acknowledgement.id).where(
            Acknowledgement.ticket_id.in_(batch.tickets),
            Acknowledgement.address == scrub.address,
        )
    ).all()
    pseudonymous = {"address": scrub.pseudonym, "domain": PSEUDONYM_DOMAIN}
    batch.by_key(Acknowledgement, [{"id": i, **pseudonymous} for i in ids])


# In this order: tickets first (locked by the caller), children after.
_STEPS: tuple[Callable[[_Batch], None], ...] = (
    _tickets,
    _participants,
    _articles,
    _attachments,
    _inbound,
    _outbox,
    _events,
    _acknowledgements,
)
