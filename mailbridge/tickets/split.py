"""Splitting a ticket: one customer message and everything after it become a new ticket
(docs/architecture.md, "Merge").

A proven staff member answers the notification of the message that is about something
else with `#split` (inbound/staff.py), or an operator runs `mailbridge tickets split N
--from-article ID` (cli/merge.py). The articles from that one on (their attachments hang on
them) move to a new ticket that answers the message's sender, with the message's subject,
the old ticket's mailbox, queue, priority, language, policy and assignee, and deadlines
counted afresh from when the message came. Tags and active participants are copied, not
moved. The old ticket keeps the rest; when what it keeps was already answered, it waits on
its customer (no escalation stays pending for a message that moved). `split_into` and
`split_from` events record who, how and which articles.

Runs inside the caller's transaction, like the rest. Callers that are not processing mail
take the processing turn first (db/turn.py); the old ticket's row is locked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from mailbridge.app import Step
from mailbridge.core.clip import clip_text
from mailbridge.core.collision import MAX_REFERENCES, Posted, answered_mail, is_news
from mailbridge.core.message import ParsedMessage
from mailbridge.core.sender import answerable
from mailbridge.core.split import SplitPoint, answered_after_split, split_problem, split_subject
from mailbridge.core.staff import StaffMessage
from mailbridge.core.states import TicketStatus
from mailbridge.db import queries
from mailbridge.db.models import (
    Article,
    Event,
    InboundMessage,
    Outbox,
    Ticket,
    TicketParticipant,
)
from mailbridge.errors import MailbridgeError
from mailbridge.tickets import tallies
from mailbridge.tickets.deadlines import AWAITING_US, deadlines_for_new_ticket, refresh_next_due
from mailbridge.tickets.events import add_event
from mailbridge.tickets.merge import lock_tickets
from mailbridge.tickets.participants import active
from mailbridge.tickets.requester import STORED_NAME

__all__ = [
    "Split",
    "SplitRefused",
    "apply_command",
    "command_problems",
    "split_check",
    "split_links",
    "split_ticket",
]

# Our mails to staff that show a message: a notification records the customer message it
# carries, a collision mail the newest message it shows (outbox.article_id).
ANSWERED_KINDS: Final = ("notification", "collision")


class SplitRefused(MailbridgeError):
    """A split that may not happen; the message says why."""


@dataclass(frozen=True, slots=True)
class Split:
    """What a split did: the ticket left behind, the new one, the articles that moved."""

    old: Ticket
    new: Ticket
    articles: list[int]


# --- which article --------------------------------------------------------------------------


def answered_article(session: Session, parsed: ParsedMessage) -> int | None:
    """The article the mail of ours that a staff reply answers showed (the one
    In-Reply-To names, else the last of ours in References; core.collision.answered_mail);
    None when it answers none of our mails to staff."""
    ids = [m for m in (parsed.in_reply_to, *parsed.references[-MAX_REFERENCES:]) if m]
    if not ids:
        return None
    rows = session.execute(
        select(Outbox.message_id, Outbox.article_id).where(
            Outbox.kind.in_(ANSWERED_KINDS), Outbox.message_id.in_(ids)
        )
    ).all()
    ours = {message_id: article_id for message_id, article_id in rows}
    found = answered_mail(parsed.in_reply_to, parsed.references, ours)
    return ours[found] if found is not None else None


def split_check(session: Session, ticket: Ticket, article_id: int | None) -> str:
    """Why `ticket` may not be split at article `article_id` ("" when it may)."""
    article = session.get(Article, article_id) if article_id is not None else None
    point = (
        SplitPoint(article.id, article.ticket_id, _is_customers(article))
        if article is not None
        else None
    )
    if point is None and article_id is not None:
        point = SplitPoint(article_id, 0, False)  # no such article: on no ticket
    first = session.scalar(
        select(Article.id).where(Article.ticket_id == ticket.id).order_by(Article.id).limit(1)
    )
    into = session.get(Ticket, ticket.merged_into_id) if ticket.merged_into_id else None
    return split_problem(
        ticket.id,
        ticket.number or 0,
        (into.number or 0) if into is not None else None,
        point,
        first,
    )


def _is_customers(article: Article) -> bool:
    return is_news(_posted(article)) and article.direction == "in"


def _posted(article: Article) -> Posted:
    return Posted(
        article.id, article.direction, article.author_kind, article.kind, article.internal
    )


# --- splitting --------------------------------------------------------------------------------


def split_ticket(step: Step, ticket: Ticket, article_id: int, *, by: str, via: str) -> Split:
    """Move article `article_id` of `ticket` and every later one to a new ticket. Raises
    SplitRefused, having changed nothing, when it may not."""
    session = step.session
    lock_tickets(session, ticket.id)
    problem = split_check(session, ticket, article_id)
    if problem:
        raise SplitRefused(problem)
    start = session.get_one(Article, article_id)
    new = _open(step, ticket, start)
    moved = list(
        session.scalars(
            select(Article.id)
            .where(Article.ticket_id == ticket.id, Article.id >= article_id)
            .order_by(Article.id)
        )
    )
    session.execute(
        update(Article)
        .where(Article.ticket_id == ticket.id, Article.id >= article_id)
        .values(ticket_id=new.id)
    )
    # A second delivery of a moved mail finds the ticket it is on now (inbound/apply.py).
    session.execute(
        update(InboundMessage)
        .where(
            InboundMessage.id.in_(
                select(Article.inbound_message_id).where(
                    Article.ticket_id == new.id, Article.inbound_message_id.is_not(None)
                )
            ),
            InboundMessage.ticket_id == ticket.id,
        )
        .values(ticket_id=new.id)
        .execution_options(synchronize_session=False)
    )
    tags = queries.add_ticket_tags(
        session, new.id, queries.ticket_tags(session, ticket.id), step.now
    )
    copied = _copy_participants(step, ticket, new, by)
    _settle(step, new, first_answer=True)
    _settle(step, ticket, first_answer=False)
    ticket.updated_at = step.now
    add_event(step, ticket, "split_into", into=new.number, by=by, via=via, articles=moved)
    add_event(
        step,
        new,
        "split_from",
        source=ticket.number,
        by=by,
        via=via,
        articles=moved,
        tags_copied=tags,
        participants_copied=copied,
        sla_policy=new.sla_policy,
    )
    return Split(ticket, new, moved)


def _open(step: Step, old: Ticket, start: Article) -> Ticket:
    """The new ticket: it answers whoever wrote the message it starts at (the old ticket's
    requester when that address cannot be answered), about that message's subject; its
    deadlines run from when that message came, under the old ticket's policy."""
    if answerable(start.from_address):
        name, address = start.from_name, start.from_address
    else:
        name, address = old.requester_name, old.requester_address
    due = deadlines_for_new_ticket(
        step.app, old.mailbox, old.priority, start.created_at, old.queue, old.sla_policy
    )
    ticket = Ticket(
        subject=split_subject(start.subject, step.app.config.tickets.tag_prefix, old.subject),
        requester_name=clip_text(name, STORED_NAME),
        requester_address=address,
        mailbox=old.mailbox,
        queue=old.queue,
        priority=old.priority,
        status=TicketStatus.NEW,
        language=old.language,
        assignee=old.assignee,
        sla_policy=due.policy.name,
        created_at=start.created_at,
        updated_at=step.now,
        first_response_due_at=due.first_response,
        resolution_due_at=due.resolution,
        escalation_level=0,
        next_escalation_at=due.next_due,
        resolution_paused_seconds=0,
    )
    queries.insert_ticket(step.session, ticket, step.app.config.tickets.number_start)
    tallies.ticket_created(step, ticket)
    return ticket


def _copy_participants(step: Step, old: Ticket, new: Ticket, by: str) -> list[str]:
    """The old ticket's active participants are on the new one too (not its requester)."""
    joining = [p for p in active(step.session, old) if p.address != new.requester_address]
    if joining:
        step.session.execute(
            insert(TicketParticipant),
            [
                {
                    "ticket_id": new.id,
                    "address": p.address,
                    "name": p.name,
                    "added_at": step.now,
                    "added_by": by,
                    "removed_at": None,
                }
                for p in joining
            ],
        )
    return [p.address for p in joining]


def _settle(step: Step, ticket: Ticket, *, first_answer: bool) -> None:
    """A ticket waiting for us whose last customer message left was answered (one that
    moved was what it waited on) waits on its customer now, as after a staff reply; the
    new ticket counts its first response met by the first answer that came with it. The
    sweep's next look is computed again either way, so nothing escalates for a message
    that moved. (The resolution time that ran while the moved message waited is not given
    back to the old ticket; it was waited on.)"""
    articles = list(
        step.session.scalars(
            select(Article).where(Article.ticket_id == ticket.id).order_by(Article.id)
        )
    )
    posted = [_posted(a) for a in articles]
    if first_answer and ticket.first_responded_at is None:
        answers = [a.created_at for a, p in zip(articles, posted, strict=True) if _answer(p)]
        ticket.first_responded_at = answers[0] if answers else None
    if ticket.status in AWAITING_US and answered_after_split(posted):
        if ticket.waiting_since is None:
            ticket.waiting_since = step.now
            add_event(step, ticket, "sla_paused", deadline="resolution", status_from=ticket.status)
        ticket.status = TicketStatus.WAITING
    refresh_next_due(step, ticket)


def _answer(posted: Posted) -> bool:
    return posted.direction == "out" and is_news(posted)


# --- tickets show -----------------------------------------------------------------------------


def split_links(session: Session, ticket: Ticket) -> dict[str, Any]:
    """What `tickets show` says of splits: the ticket this one was split from (or None),
    and the tickets split from it, by number."""
    rows = session.execute(
        select(Event.type, Event.data)
        .where(Event.ticket_id == ticket.id, Event.type.in_(("split_from", "split_into")))
        .order_by(Event.id)
    ).all()
    source = [d.get("source") for t, d in rows if t == "split_from"]
    return {
        "split_from": source[0] if source else None,
        "split_into": [d.get("into") for t, d in rows if t == "split_into"],
    }


# --- by mail ----------------------------------------------------------------------------------


def command_problems(
    step: Step, ticket: Ticket, parsed: ParsedMessage, message: StaffMessage
) -> list[str]:
    """What is wrong with a staff reply's `#split`, checked before anything of the reply is
    applied, so a refused reply changes nothing."""
    if not message.has("split"):
        return []
    if message.has("merge"):
        return ["#split and #merge together: give one of them"]
    article = answered_article(step.session, parsed)
    if article is None:
        return [
            "#split: the reply answers no notification of ours, so there is no message to "
            "split at; answer the notification of the customer's message that starts the "
            "new ticket"
        ]
    problem = split_check(step.session, ticket, article)
    return [f"#split: {problem}"] if problem else []


def apply_command(
    step: Step, ticket: Ticket, parsed: ParsedMessage, message: StaffMessage, by: str
) -> tuple[Ticket, StaffMessage]:
    """A staff reply's `#split`, applied before the rest of the reply: the ticket the rest
    applies to (the new one) and the reply without the `#split`. Unchanged without one.
    Call after command_problems found none."""
    if not message.has("split"):
        return ticket, message
    article = answered_article(step.session, parsed)
    assert article is not None  # command_problems said so
    done = split_ticket(step, ticket, article, by=by, via="mail")
    rest = tuple(c for c in message.commands if c.name != "split")
    return done.new, replace(message, commands=rest)
