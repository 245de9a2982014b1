"""Collision check of staff replies: held as drafts, warned about, sent or dropped by mail.

A proven staff reply answers one of our mails to staff (a notification, or an earlier
collision mail), and the outbox row of that mail records the newest article it showed
(`outbox.article_id`). When the ticket has since received news (core/collision.py,
`is_news`), `[staff] collision` decides: "hold" keeps the reply as an internal draft
article and mails its author what changed; "warn" relays it and mails the same; "off"
relays it. The author answers the collision mail with `#send` (the draft is replayed
through the normal staff path, checked again against what that mail showed) or `#drop`.
Each staff member has at most one held draft per ticket: a newer answer of theirs replaces
it. See docs/architecture.md, "Collision check".

Runs inside the caller's transaction, like the rest of apply.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy import select

from mailbridge.app import Step
from mailbridge.core.collision import (
    MAX_REFERENCES,
    MAX_SHOWN,
    CollisionCheck,
    Posted,
    answered_mail,
    decide,
)
from mailbridge.core.humanize import excerpt
from mailbridge.core.message import Attachment, ParsedMessage
from mailbridge.core.relay import relayed_attachments
from mailbridge.core.staff import Command, StaffMessage
from mailbridge.db.models import Article, AttachmentRecord, Event, InboundMessage, Outbox, Ticket
from mailbridge.db.stored_bytes import attachment_bytes, attachment_row
from mailbridge.inbound.identity import StaffAnswer, StaffClaim, answer_staff_member
from mailbridge.outbound.queue import Queued, ticket_context, ticket_zone
from mailbridge.tickets.events import Applied, add_event
from mailbridge.tickets.staff_articles import StaffWords, add_staff_article

__all__ = [
    "check",
    "draft_problems",
    "draft_to_send",
    "drop_draft",
    "Reply",
    "hold",
    "settle",
]

log = logging.getLogger(__name__)

HELD: Final = "draft"  # article.kind of a held reply; settled ones say how they ended
SENT, DROPPED, REPLACED = "draft_sent", "draft_dropped", "draft_replaced"
ANSWERED_KINDS: Final = ("notification", "collision")  # mails to staff that show articles
VIA: Final = "mail"


# --- the check ---------------------------------------------------------------------------------


def check(
    step: Step, ticket: Ticket, parsed: ParsedMessage, message: StaffMessage
) -> CollisionCheck:
    """Compare the reply with the mail it answers. The ticket row is locked first (FOR
    UPDATE on PostgreSQL; SQLite writes one at a time anyway), so no other transaction adds
    an answer between this check and the reply it lets through."""
    mode = step.app.config.staff.collision
    if mode == "off" or message.has("note"):
        return decide(mode, note=message.has("note"), seen_article_id=None, articles=())
    step.session.execute(select(Ticket.id).where(Ticket.id == ticket.id).with_for_update())
    seen = _seen_article(step, ticket, parsed)
    articles = _posted_since(step, ticket, seen) if seen is not None else []
    return decide(mode, note=False, seen_article_id=seen, articles=articles)


def _seen_article(step: Step, ticket: Ticket, parsed: ParsedMessage) -> int | None:
    """The newest article the answered mail showed; None when the reply answers none of
    our mails to staff about this ticket (or one from before they recorded it)."""
    ids = [m for m in (parsed.in_reply_to, *parsed.references[-MAX_REFERENCES:]) if m]
    if not ids:
        return None
    rows = step.session.execute(
        select(Outbox.message_id, Outbox.article_id).where(
            Outbox.ticket_id == ticket.id,
            Outbox.kind.in_(ANSWERED_KINDS),
            Outbox.message_id.in_(ids),
        )
    ).all()
    ours = {message_id: article_id for message_id, article_id in rows}
    found = answered_mail(parsed.in_reply_to, parsed.references, ours)
    return ours[found] if found is not None else None


def _posted_since(step: Step, ticket: Ticket, seen: int) -> list[Posted]:
    query = (
        select(Article.id, Article.direction, Article.author_kind, Article.kind, Article.internal)
        .where(Article.ticket_id == ticket.id, Article.id > seen)
        .order_by(Article.id)
    )
    return [Posted(*row) for row in step.session.execute(query).all()]


# --- #send and #drop ---------------------------------------------------------------------------


def draft_problems(
    step: Step, ticket: Ticket, claim: StaffClaim, message: StaffMessage
) -> list[str]:
    """What is wrong with a `#send` or `#drop`: it must stand alone, and only the author
    of a held draft on this ticket may use it."""
    wanted = [c.name for c in message.commands if c.name in ("send", "drop")]
    if not wanted:
        return []
    if len(set(wanted)) > 1:
        return ["#send and #drop together: give one of them"]
    if message.text or len(message.commands) > 1:
        return [
            f"#{wanted[0]} stands alone: it {'relays' if wanted[0] == 'send' else 'discards'} "
            "the held reply as it was; to change it, write a new reply instead"
        ]
    if _held_draft(step, ticket, claim.address) is not None:
        return []
    others = sorted({a.from_address for a in _held_drafts(step, ticket)})
    held = f" (held here: replies of {', '.join(others)}; only their author can send or drop them)"
    return [f"#{wanted[0]}: no held reply of yours on this ticket" + (held if others else "")]


def draft_to_send(
    step: Step, ticket: Ticket, parsed: ParsedMessage, claim: StaffClaim
) -> tuple[Article, StaffMessage, ParsedMessage]:
    """The held draft, and the reply to replay: its commands and text as they were held,
    its attachments in place of the `#send` mail's. Call after draft_problems found none."""
    draft = _held_draft(step, ticket, claim.address)
    assert draft is not None  # draft_problems said so
    commands = _held_commands(step, ticket, draft)
    message = StaffMessage(commands, (), draft.text_body)
    return draft, message, replace(parsed, attachments=_draft_attachments(step, draft))


def drop_draft(step: Step, ticket: Ticket, claim: StaffClaim) -> Applied:
    """Discard the author's held draft: it stays on the ticket, marked dropped."""
    draft = _held_draft(step, ticket, claim.address)
    assert draft is not None  # draft_problems said so
    draft.kind = DROPPED
    ticket.updated_at = step.now
    add_event(step, ticket, "draft_dropped", by=claim.address, via=VIA, draft_article_id=draft.id)
    return Applied.to(ticket, "draft_dropped", reason=f"proof: {claim.proof}")


def _held_drafts(step: Step, ticket: Ticket) -> Sequence[Article]:
    query = select(Article).where(Article.ticket_id == ticket.id, Article.kind == HELD)
    return step.session.scalars(query.order_by(Article.id)).all()


def _held_draft(step: Step, ticket: Ticket, author: str) -> Article | None:
    mine = [a for a in _held_drafts(step, ticket) if a.from_address.lower() == author.lower()]
    return mine[-1] if mine else None


def _held_commands(step: Step, ticket: Ticket, draft: Article) -> tuple[Command, ...]:
    """The commands stored with the draft's latest `reply_held` event."""
    query = (
        select(Event.data)
        .where(Event.ticket_id == ticket.id, Event.type == "reply_held")
        .order_by(Event.id.desc())
    )
    for data in step.session.scalars(query):
        if data.get("draft_article_id") == draft.id:
            return tuple(Command(str(name), str(argument)) for name, argument in data["commands"])
    return ()


def _draft_attachments(step: Step, draft: Article) -> tuple[Attachment, ...]:
    query = select(AttachmentRecord).where(AttachmentRecord.article_id == draft.id)
    held = (
        (r, attachment_bytes(step.session, r))
        for r in step.session.scalars(query.order_by(AttachmentRecord.id))
    )
    return tuple(
        Attachment(
            filename=r.filename or "attachment",
            content_type=r.content_type,
            size=r.size,
            inline=r.inline,
            content_id=r.content_id,
            payload=payload,
        )
        for r, payload in held
        if payload is not None
    )


# --- holding and telling -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """The staff reply being held or warned about."""

    ticket: Ticket
    parsed: ParsedMessage
    claim: StaffClaim
    message: StaffMessage


def hold(
    step: Step,
    inbound: InboundMessage,
    reply: Reply,
    found: CollisionCheck,
    draft: Article | None,
) -> Applied:
    """Keep the reply as a draft (or keep the one `#send` tried to relay) and tell its
    author what changed; nothing reaches the customer and no command is applied."""
    ticket, parsed, claim, message = reply.ticket, reply.parsed, reply.claim, reply.message
    again = draft is not None
    if draft is None:
        _replace_held(step, ticket, claim.address)
        draft = _record_draft(step, ticket, inbound, parsed, claim, message)
    row = _tell(step, reply, found, "held", max(found.newer))
    ticket.updated_at = step.now
    add_event(
        step,
        ticket,
        "reply_held",
        by=claim.address,
        via=VIA,
        proof=claim.proof,
        draft_article_id=draft.id,
        seen_article_id=found.seen_article_id,
        newer=list(found.newer),
        outbox_id=row.id,
        commands=[[c.name, c.argument] for c in message.commands],
        again=again,
    )
    log.info("ticket #%s: reply from %s held: %s", ticket.number, claim.address, found.reason)
    return Applied.to(ticket, "reply_held", reason=found.reason)


def settle(
    step: Step,
    reply: Reply,
    found: CollisionCheck,
    *,
    article: Article,
    draft: Article | None,
) -> None:
    """After a reply went through: mark the draft it replayed as sent (or replace the
    author's held draft with it), warn about what it did not see, record an unchecked one."""
    ticket, claim = reply.ticket, reply.claim
    if draft is not None:
        draft.kind = SENT
        add_event(
            step,
            ticket,
            "draft_sent",
            by=claim.address,
            via=VIA,
            draft_article_id=draft.id,
            article_id=article.id,
        )
    elif not article.internal:
        _replace_held(step, ticket, claim.address, by_article=article.id)
    if found.action == "warn":
        seen = max(*found.newer, article.id)
        row = _tell(step, reply, found, "warned", seen)
        add_event(
            step,
            ticket,
            "collision_warned",
            by=claim.address,
            via=VIA,
            article_id=article.id,
            seen_article_id=found.seen_article_id,
            newer=list(found.newer),
            outbox_id=row.id,
        )
    elif found.unchecked and step.app.config.staff.collision != "off":
        add_event(
            step,
            ticket,
            "collision_unchecked",
            by=claim.address,
            via=VIA,
            article_id=article.id,
            reason=found.reason,
        )


def _replace_held(step: Step, ticket: Ticket, author: str, by_article: int | None = None) -> None:
    """A newer answer of the same staff member replaces their held draft."""
    old = _held_draft(step, ticket, author)
    if old is None:
        return
    old.kind = REPLACED
    add_event(
        step,
        ticket,
        "draft_replaced",
        by=author,
        via=VIA,
        draft_article_id=old.id,
        by_article_id=by_article,
    )


def _record_draft(
    step: Step,
    ticket: Ticket,
    inbound: InboundMessage,
    parsed: ParsedMessage,
    claim: StaffClaim,
    message: StaffMessage,
) -> Article:
    """The held reply as an internal article, with the attachments a relay would carry."""
    words = StaffWords(claim.address, message.text, True, None, [], [], kind=HELD)
    draft = add_staff_article(step, ticket, inbound, parsed, words)
    for attachment in relayed_attachments(parsed.attachments):
        step.session.add(attachment_row(step.session, draft.id, attachment))
    return draft


def _tell(step: Step, reply: Reply, found: CollisionCheck, event: str, seen: int) -> Queued:
    """The `staff_collision` mail to the reply's author, threaded to their reply, with a
    reply token for them alone; its row records the newest article it shows (`seen`)."""
    ticket, parsed, claim = reply.ticket, reply.parsed, reply.claim
    language = step.app.config.templates.language
    context = ticket_context(step.app, ticket, language)
    context["event"] = event
    zone = ticket_zone(step.app, ticket)
    context["digest"] = _shown(step, found.newer, zone)
    context["excerpt"] = excerpt(reply.message.text, max_lines=20, max_chars=2000)
    unique = f"collision.{ticket.id}"
    answer = StaffAnswer("collision", "staff_collision", context, language, unique)
    return answer_staff_member(
        step, ticket, parsed, claim.address, replace(answer, article_id=seen)
    )


def _shown(step: Step, newer: Sequence[int], zone: ZoneInfo) -> list[object]:
    """The newest MAX_SHOWN of the messages the reply did not see: who, when (in the
    ticket's zone), what."""
    query = select(Article).where(Article.id.in_(newer[-MAX_SHOWN:])).order_by(Article.id)
    return [
        {
            "author": a.from_name or a.from_address or "(no sender)",
            "at": a.created_at.astimezone(zone).isoformat(timespec="minutes"),
            "direction": a.direction,
            "text": excerpt(a.text_body, max_lines=12, max_chars=1200),
        }
        for a in step.session.scalars(query)
    ]
