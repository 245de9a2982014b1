"""`mailbridge customer export`: everything held about one address (GDPR Art. 15) in one
zip file: the tickets it took part in (tickets/customer_data.py: what an erasure would erase
whole) with their articles as text, raw mail, attachments, audit events and mail sent to
it; its ratings; mail that made no ticket and names it; mail about no ticket sent to it;
and the records outside them that name it. `index.json` describes every file.

Every name in the zip is made here, from numbers and from attachment names made safe
(core/safe_text.py): no name climbs out of the folder it is unpacked in. The zip is
written beside its destination, readable by its owner only, and renamed into place, so a
failure leaves no half file; an existing file is never replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mailbridge.app import App
from mailbridge.core.attachment_names import built_name
from mailbridge.core.erasure import address_pattern
from mailbridge.core.safe_text import safe_filename
from mailbridge.db.models import (
    Acknowledgement,
    AddressState,
    Article,
    AttachmentRecord,
    Event,
    InboundMessage,
    Outbox,
    SenderRule,
    Ticket,
    TicketParticipant,
    TicketTag,
)
from mailbridge.db.stored_bytes import attachment_bytes, attachment_held, raw_held, raw_of
from mailbridge.errors import MailbridgeError
from mailbridge.outbound.render import RecipeError, outbox_bytes
from mailbridge.tickets.customer_data import (
    conversations,
    events_naming,
    json_names,
    ticketless_messages,
)

__all__ = ["Export", "export_customer"]

FILE_MODE = 0o600  # it holds someone's mail


@dataclass
class Export:
    """What went into the zip: one entry of index.json per file."""

    address: str
    exported_at: str
    files: list[dict[str, Any]] = field(default_factory=list)
    tickets: list[int | None] = field(default_factory=list)


class _Zip:
    def __init__(self, archive: zipfile.ZipFile, export: Export) -> None:
        self.archive, self.export = archive, export

    def add(self, path: str, data: bytes | str, kind: str, **about: Any) -> None:
        body = data.encode("utf-8") if isinstance(data, str) else data
        _check_name(path)
        self.archive.writestr(path, body)
        digest = hashlib.sha256(body).hexdigest()
        self.export.files.append(
            {"path": path, "kind": kind, "bytes": len(body), "sha256": digest, **about}
        )


def export_customer(app: App, address: str, out: Path) -> Export:
    """Write the zip of what is held about `address` (lower-case, as stored) to `out`."""
    if out.exists():
        raise MailbridgeError(f"{out} exists: give another --out (nothing was written)")
    export = Export(address, app.clock.now().isoformat())
    draft = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except OSError as exc:
        raise MailbridgeError(f"cannot write {out}: {exc.strerror}") from None
    try:
        with (
            os.fdopen(fd, "wb") as handle,
            zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive,
            app.sessions() as session,
        ):
            _write(app, session, _Zip(archive, export), address)
            archive.writestr("index.json", json.dumps(_index(export), ensure_ascii=False, indent=2))
        os.link(draft, out)  # refuses to replace a file made meanwhile
    finally:
        draft.unlink(missing_ok=True)
    return export


def _index(export: Export) -> dict[str, Any]:
    return {
        "address": export.address,
        "exported_at": export.exported_at,
        "tickets": export.tickets,
        "files": export.files,
    }


def _write(app: App, session: Session, zipped: _Zip, address: str) -> None:
    pattern = address_pattern(address)
    ratings: list[dict[str, Any]] = []
    found = conversations(session, address)
    for ticket_id in found:
        ticket = session.get_one(Ticket, ticket_id)
        zipped.export.tickets.append(ticket.number)
        ratings += _ticket(app, session, zipped, ticket, address)
    zipped.add("ratings.json", _json(ratings), "ratings", description="ratings of the tickets")
    for message_id in ticketless_messages(session, pattern):
        raw = raw_of(session, session.get_one(InboundMessage, message_id))
        zipped.add(f"mail/{message_id}.eml", raw, "raw_mail", description="made no ticket")
    unticketed = select(Outbox).where(
        Outbox.ticket_id.is_(None), json_names(Outbox.envelope_to, address)
    )
    for row in session.scalars(unticketed.order_by(Outbox.id)):
        zipped.add(f"sent/{row.id}.eml", _sent(app, row), "sent_mail", state=row.state)
    records = _records(session, address, pattern, frozenset(found))
    zipped.add("records.json", _json(records), "records", description="rows outside the tickets")


def _ticket(
    app: App, session: Session, zipped: _Zip, ticket: Ticket, address: str
) -> list[dict[str, Any]]:
    """The ticket's files; its ratings."""
    folder = f"tickets/{ticket.number if ticket.number is not None else f'id-{ticket.id}'}"
    events = session.scalars(
        select(Event).where(Event.ticket_id == ticket.id).order_by(Event.id)
    ).all()
    history = [{"at": _iso(e.at), "type": e.type, "data": e.data} for e in events]
    rated = [e for e in events if e.type == "rated" and isinstance(e.data, dict)]
    zipped.add(f"{folder}/ticket.json", _json(_ticket_record(session, ticket)), "ticket")
    zipped.add(f"{folder}/events.json", _json(history), "events", ticket=ticket.number)
    articles = session.scalars(
        select(Article).where(Article.ticket_id == ticket.id).order_by(Article.id)
    ).all()
    for article in articles:
        about = {"ticket": ticket.number, "internal": article.internal}
        zipped.add(f"{folder}/article-{article.id}.txt", _article_text(article), "article", **about)
        for name, data in _attachments(session, article.id):
            zipped.add(f"{folder}/attachments/{name}", data, "attachment", **about)
    for path, raw in _raw_mail(session, ticket.id, [a.id for a in articles]):
        zipped.add(f"{folder}/{path}", raw, "raw_mail", ticket=ticket.number)
    sent = select(Outbox).where(
        Outbox.ticket_id == ticket.id, json_names(Outbox.envelope_to, address)
    )
    for row in session.scalars(sent.order_by(Outbox.id)):
        zipped.add(
            f"{folder}/sent-{row.id}.eml", _sent(app, row), "sent_mail", ticket=ticket.number
        )
    return [
        {"ticket": ticket.number, "at": _iso(e.at), "verdict": e.data.get("verdict")}
        | {"how": e.data.get("how")}
        for e in rated
    ]


def _sent(app: App, row: Outbox) -> bytes:
    """A mail as it goes or went out; one still to be rendered is rendered now, and one
    that no longer renders is given as the values it holds, which are hers as well."""
    try:
        return outbox_bytes(app, row)
    except RecipeError:
        return json.dumps(row.recipe, ensure_ascii=False, indent=2).encode()


def _ticket_record(session: Session, ticket: Ticket) -> dict[str, Any]:
    record = {
        column.key: _plain(getattr(ticket, column.key))
        for column in Ticket.__table__.columns
        if column.key not in ("id", "merged_into_id")
    }
    people = session.scalars(
        select(TicketParticipant).where(TicketParticipant.ticket_id == ticket.id)
    )
    record["participants"] = [
        {
            "address": p.address,
            "name": p.name,
            "added_at": _iso(p.added_at),
            "removed": bool(p.removed_at),
        }
        for p in people
    ]
    tags = select(TicketTag.tag).where(TicketTag.ticket_id == ticket.id).order_by(TicketTag.tag)
    record["tags"] = list(session.scalars(tags))
    return record


def _article_text(article: Article) -> str:
    author = article.from_address
    head = [
        f"Date: {_iso(article.created_at)}",
        f"From: {article.from_name} <{author}>" if article.from_name else f"From: {author}",
        f"To: {', '.join(article.to)}",
    ]
    if article.cc:
        head.append(f"Cc: {', '.join(article.cc)}")
    head += [f"Subject: {article.subject}", f"Direction: {article.direction}"]
    if article.internal:
        head.append("Internal note: yes")
    return "\n".join(head) + "\n\n" + article.text_body


def _attachments(session: Session, article_id: int) -> Iterator[tuple[str, bytes]]:
    """(name in the zip, bytes) of the article's attachments that still have their bytes."""
    rows = session.scalars(
        select(AttachmentRecord)
        .where(AttachmentRecord.article_id == article_id, attachment_held())
        .order_by(AttachmentRecord.id)
    )
    for record in rows:
        data = attachment_bytes(session, record)
        if data is None:
            continue
        name = safe_filename(record.filename or "") or built_name(record.content_type, record.id)
        yield f"{record.id}-{name}", data


def _raw_mail(session: Session, ticket_id: int, articles: list[int]) -> Iterator[tuple[str, bytes]]:
    made_from = select(Article.inbound_message_id).where(Article.id.in_(articles))
    rows = session.scalars(
        select(InboundMessage)
        .where(
            or_(InboundMessage.ticket_id == ticket_id, InboundMessage.id.in_(made_from)),
            raw_held(),
        )
        .order_by(InboundMessage.id)
    )
    for message in rows:
        yield f"mail-{message.id}.eml", raw_of(session, message)


def _records(
    session: Session, address: str, pattern: re.Pattern[str], found: frozenset[int]
) -> dict[str, Any]:
    """The rows outside the tickets that name the address."""
    state = session.get(AddressState, address)
    rules = session.scalars(select(SenderRule).where(SenderRule.pattern == address))
    acks = session.scalars(
        select(Acknowledgement.at)
        .where(Acknowledgement.address == address)
        .order_by(Acknowledgement.at)
    )
    return {
        "bounces": None
        if state is None
        else {
            "bouncing_since": _iso(state.bouncing_since),
            "bounce_count": state.bounce_count,
            "last_status": state.last_status,
            "last_diagnostic": state.last_diagnostic,
        },
        "sender_rules": [
            {"kind": r.kind, "created_at": _iso(r.created_at), "note": r.note} for r in rules
        ],
        "acknowledgements": [_iso(at) for at in acks],
        "other_events": [
            {"at": _iso(event.at), "type": event.type, "data": event.data}
            for event in events_naming(session, address, pattern)
            if event.ticket_id not in found
        ],
    }


def _check_name(path: str) -> None:
    """A relative name of plain parts: nothing absolute, no "..", no backslash."""
    parts = path.split("/")
    if path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"unsafe name in the export: {path!r}")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=_plain)


def _plain(value: Any) -> Any:
    return _iso(value) if isinstance(value, datetime) else value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
