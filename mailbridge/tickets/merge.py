"""Merging one ticket into another, and undoing it within 24 hours (docs/architecture.md,
"Merge").

A merge moves the source's articles (their attachments hang on them), tags and participants
to the target, leaves the source `merged` and pointing at the target with its deadlines
stopped, keeps the earlier unanswered first-response deadline, and tells the source's
customer once where their request continues. Mail that still names the source (its tag, a
reply token) is followed to the live ticket (`live_ticket`); mail that refers to a moved
article finds it where it now is. The `merged_into` event on the source records exactly what
moved, so tickets/unmerge.py can move it back.

Runs inside the caller's transaction, like the rest. Callers that are not processing mail
take the processing turn first (db/turn.py), and both tickets are locked lower id first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from mailbridge.app import Step
from mailbridge.core.correlate import format_tag
from mailbridge.core.merge import (
    MergeSide,
    chain_end,
    merge_problem,
    surviving_first_response,
)
from mailbridge.core.message import Address
from mailbridge.core.sender import answerable
from mailbridge.core.staff import StaffMessage, ticket_number_argument
from mailbridge.core.states import CLOSED_STATUSES, TicketStatus
from mailbridge.db import queries
from mailbridge.db.models import Article, Event, Ticket, TicketParticipant
from mailbridge.errors import MailbridgeError
from mailbridge.outbound.queue import Mail, queue_mail, ticket_context
from mailbridge.tickets.deadlines import on_customer_followup, refresh_next_due
from mailbridge.tickets.events import add_event

__all__ = [
    "MergeRefused",
    "Merged",
    "apply_command",
    "command_problems",
    "live_ticket",
    "live_ticket_by_number",
    "merge_check",
    "merge_links",
    "merge_tickets",
    "merged_from",
    "lock_tickets",
    "participant_values",
]

# What a merge may change on each ticket, recorded so unmerge can put it back.
_REMEMBERED = (
    "status",
    "first_response_due_at",
    "first_responded_at",
    "resolution_due_at",
    "resolved_at",
    "waiting_since",
    "resolution_paused_seconds",
    "next_escalation_at",
)


class MergeRefused(MailbridgeError):
    """A merge or unmerge that may not happen; the message says why."""


# --- following merges ------------------------------------------------------------------------


def live_ticket(session: Session, ticket: Ticket | None) -> Ticket | None:
    """The ticket `ticket`'s merges end at (itself when not merged); None for a broken
    chain (core.merge.chain_end), so no mail is ever added to a merged ticket."""
    if ticket is None or ticket.merged_into_id is None:
        return ticket
    end = chain_end(ticket.id, lambda i: session.get_one(Ticket, i).merged_into_id)
    return session.get(Ticket, end) if end is not None else None


def live_ticket_by_number(session: Session, number: int) -> Ticket | None:
    return live_ticket(session, queries.ticket_by_number(session, number))


def merge_links(session: Session, ticket: Ticket) -> dict[str, Any]:
    """What `tickets show` says of merges: the number the ticket was merged into (and
    when), and the numbers merged into it."""
    into = session.get(Ticket, ticket.merged_into_id) if ticket.merged_into_id else None
    return {
        "merged_into": into.number if into is not None else None,
        "merged_at": ticket.merged_at.isoformat() if ticket.merged_at else None,
        "merged_from": merged_from(session, ticket),
    }


def merged_from(session: Session, ticket: Ticket) -> list[int]:
    """The numbers of the tickets merged into this one."""
    query = select(Ticket.number).where(Ticket.merged_into_id == ticket.id).order_by(Ticket.number)
    return [n for n in session.scalars(query) if n is not None]


# --- merging ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Merged:
    """What a merge did: the ticket it went into (at the end of any chain), and whether
    that is another than the one asked for."""

    target: Ticket
    asked: int
    articles: int
    notice_outbox_id: int | None


def merge_check(step: Step, source: Ticket, asked: int, *, across_mailboxes: bool = False) -> str:
    """Why `source` may not be merged into ticket number `asked` ("" when it may)."""
    target = live_ticket_by_number(step.session, asked)
    return merge_problem(
        _side(step.session, source),
        asked,
        _side(step.session, target) if target is not None else None,
        across_mailboxes=across_mailboxes,
    )


def _side(session: Session, ticket: Ticket) -> MergeSide:
    into = session.get(Ticket, ticket.merged_into_id) if ticket.merged_into_id else None
    return MergeSide(
        ticket.id, ticket.number or 0, ticket.mailbox, into.number if into is not None else None
    )


def merge_tickets(
    step: Step,
    source: Ticket,
    asked: int,
    *,
    by: str,
    via: str,
    across_mailboxes: bool = False,
) -> Merged:
    """Merge `source` into ticket number `asked` (or the live ticket its merges end at).
    Raises MergeRefused, having changed nothing, when it may not."""
    found = live_ticket_by_number(step.session, asked)
    lock_tickets(step.session, source.id, *([found.id] if found is not None else []))
    problem = merge_check(step, source, asked, across_mailboxes=across_mailboxes)
    if problem:
        raise MergeRefused(problem)
    assert found is not None  # merge_check refuses an unknown target
    target = found
    previous = {"source": _remember(source), "target": _remember(target)}
    thread = queries.customer_thread(step.session, source.id)
    moved = _move(step, source, target, by)
    _join_deadlines(step, source, target)
    source.status = TicketStatus.MERGED
    source.merged_into_id = target.id
    source.merged_at = step.now
    source.next_escalation_at = None
    source.updated_at = target.updated_at = step.now
    notice = _tell_customer(step, source, target, thread)
    record = {
        "into": target.number,
        **({"asked": asked} if asked != target.number else {}),
        "by": by,
        "via": via,
        **moved,
        "previous": previous,
        "notice_outbox_id": notice,
    }
    add_event(step, source, "merged_into", **record)
    add_event(
        step,
        target,
        "merged_from",
        source=source.number,
        by=by,
        via=via,
        articles=moved["articles"],
        tags_moved=moved["tags_moved"],
        participants_moved=[p["address"] for p in moved["participants_moved"]],
    )
    return Merged(target, asked, len(moved["articles"]), notice)


def lock_tickets(session: Session, *ids: int) -> None:
    """Lock the tickets' rows, lower id first, so two merges (or a merge and the sweep)
    wait for each other instead of deadlocking; read them afresh once locked."""
    query = (
        select(Ticket)
        .where(Ticket.id.in_(sorted(set(ids))))
        .order_by(Ticket.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    session.scalars(query).all()


def _remember(ticket: Ticket) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in _REMEMBERED:
        value = getattr(ticket, name)
        values[name] = value.isoformat() if isinstance(value, datetime) else value
    return values


def _move(step: Step, source: Ticket, target: Ticket, by: str) -> dict[str, Any]:
    """Articles, tags and participants go to the target; what moved, for unmerge."""
    session = step.session
    articles = list(session.scalars(select(Article.id).where(Article.ticket_id == source.id)))
    if articles:
        session.execute(update(Article).where(Article.id.in_(articles)).values(ticket_id=target.id))
    tags = queries.ticket_tags(session, source.id)
    queries.remove_ticket_tags(session, source.id, tags)
    tags_moved = queries.add_ticket_tags(session, target.id, tags, step.now)
    return {
        "articles": articles,
        "tags": tags,
        "tags_moved": tags_moved,
        **_move_participants(step, source, target, by),
    }


def _move_participants(step: Step, source: Ticket, target: Ticket, by: str) -> dict[str, Any]:
    """The source's participants join the target (where the target has the address
    already, its row is kept); the source's requester becomes one when the target answers
    someone else, so answers on the target reach them too."""
    session = step.session
    rows = list(
        session.scalars(select(TicketParticipant).where(TicketParticipant.ticket_id == source.id))
    )
    taken = set(
        session.scalars(
            select(TicketParticipant.address).where(TicketParticipant.ticket_id == target.id)
        )
    )
    kept = [_participant_record(row) for row in rows]
    moving = [row.address for row in rows if row.address not in taken]
    session.execute(delete(TicketParticipant).where(TicketParticipant.ticket_id == source.id))
    if moving:
        session.execute(
            insert(TicketParticipant),
            [
                {**participant_values(record), "ticket_id": target.id}
                for record in kept
                if record["address"] in moving
            ],
        )
    added = ""
    requester = source.requester_address
    if (
        answerable(requester)
        and requester != target.requester_address
        and requester not in taken
        and requester not in moving
    ):
        session.execute(
            insert(TicketParticipant),
            {
                "ticket_id": target.id,
                "address": requester,
                "name": source.requester_name,
                "added_at": step.now,
                "added_by": by,
                "removed_at": None,
            },
        )
        added = requester
    return {
        "participants": kept,
        "participants_moved": [r for r in kept if r["address"] in moving],
        "requester_added": added,
    }


def _participant_record(row: TicketParticipant) -> dict[str, Any]:
    return {
        "address": row.address,
        "name": row.name,
        "added_at": row.added_at.isoformat(),
        "added_by": row.added_by,
        "removed_at": row.removed_at.isoformat() if row.removed_at else None,
    }


def participant_values(record: dict[str, Any]) -> dict[str, Any]:
    removed = record["removed_at"]
    return {
        "address": record["address"],
        "name": record["name"],
        "added_at": datetime.fromisoformat(record["added_at"]),
        "added_by": record["added_by"],
        "removed_at": datetime.fromisoformat(removed) if removed else None,
    }


def _join_deadlines(step: Step, source: Ticket, target: Ticket) -> None:
    """The earlier unanswered first-response deadline survives; a customer's mail that was
    still waiting for us on the source opens a target that waited on its customer or was
    done; the sweep's next look at the target is computed again. Escalations that fired
    stay on the ticket they fired for."""
    target.first_response_due_at = surviving_first_response(
        target.first_response_due_at,
        target.first_responded_at is not None,
        source.first_response_due_at,
        source.first_responded_at is not None,
    )
    waiting_for_us = source.status in (TicketStatus.NEW, TicketStatus.OPEN)
    if waiting_for_us and (
        target.status == TicketStatus.WAITING or target.status in CLOSED_STATUSES
    ):
        on_customer_followup(step, target)
    else:
        refresh_next_due(step, target)


def _tell_customer(step: Step, source: Ticket, target: Ticket, thread: list[str]) -> int | None:
    """One short notice to the source's customer, in their conversation, with the target's
    tag: sent once for each ticket they are merged into, however often it is merged."""
    if not answerable(source.requester_address) or _told_before(step.session, source, target):
        return None
    language = source.language or step.app.brand(source.mailbox).language
    context = ticket_context(step.app, target, language)
    context["requester_name"] = source.requester_name
    context["requester_address"] = source.requester_address
    context["merged_from_tag"] = format_tag(step.app.config.tickets.tag_prefix, source.number or 0)
    row = queue_mail(
        step,
        Mail(
            kind="merged",
            ticket=target,
            template="merged",
            context=context,
            to=[Address(source.requester_name, source.requester_address)],
            language=language,
            unique=f"merged.{source.id}.{target.id}",
            in_reply_to=thread[-1] if thread else None,
            references=thread,
        ),
    )
    return row.id


def _told_before(session: Session, source: Ticket, target: Ticket) -> bool:
    earlier = session.scalars(
        select(Event.data).where(Event.ticket_id == source.id, Event.type == "merged_into")
    )
    return any(d.get("into") == target.number and d.get("notice_outbox_id") for d in earlier)


# --- by mail -------------------------------------------------------------------------------


def command_problems(step: Step, ticket: Ticket, message: StaffMessage) -> list[str]:
    """What is wrong with a staff reply's `#merge`, checked before anything of the reply is
    applied, so a refused reply changes nothing."""
    problems: list[str] = []
    argument = message.argument("merge")
    if argument is not None:
        problem = merge_check(step, ticket, ticket_number_argument(argument) or 0)
        if problem:
            problems.append(f"#merge {argument}: {problem}")
    return problems


def apply_command(step: Step, ticket: Ticket, message: StaffMessage, by: str) -> None:
    """A staff reply's `#merge N`, applied after the rest of the reply (whose article and
    relayed answer then move with the ticket's others)."""
    argument = message.argument("merge")
    if argument is not None:
        merge_tickets(step, ticket, ticket_number_argument(argument) or 0, by=by, via="mail")
