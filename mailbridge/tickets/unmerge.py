"""Undoing a merge within 24 hours (docs/architecture.md, "Merge"): exactly what the
merge moved, as its `merged_into` event recorded it (tickets/merge.py), goes back, and the
merged ticket gets its status and deadlines again. Mail that reached the kept ticket in
between stays there.

Runs inside the caller's transaction, like the rest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from mailbridge.app import Step
from mailbridge.core.merge import unmerge_problem
from mailbridge.core.states import TicketStatus
from mailbridge.db import queries
from mailbridge.db.models import Article, Event, Ticket, TicketParticipant
from mailbridge.tickets.deadlines import refresh_next_due
from mailbridge.tickets.events import add_event
from mailbridge.tickets.merge import MergeRefused, lock_tickets, participant_values

__all__ = ["unmerge_ticket"]


def unmerge_ticket(step: Step, source: Ticket, *, by: str, via: str) -> Ticket:
    """Move back exactly what the merge of `source` moved and restore its status and
    deadlines; mail that reached the target since stays there. Returns the target.
    Raises MergeRefused, having changed nothing, when it may not."""
    session = step.session
    target = session.get(Ticket, source.merged_into_id) if source.merged_into_id else None
    lock_tickets(session, source.id, *([target.id] if target is not None else []))
    further = (
        session.get(Ticket, target.merged_into_id) if target and target.merged_into_id else None
    )
    problem = unmerge_problem(
        source.number or 0,
        source.merged_at if target is not None else None,
        further.number if further is not None else None,
        step.now,
    )
    record = _merge_record(session, source)
    if not problem and record is None:
        problem = f"ticket #{source.number} has no record of its merge to undo"
    if problem:
        raise MergeRefused(problem)
    assert target is not None and record is not None
    articles = [int(a) for a in record.get("articles", [])]
    if articles:
        session.execute(
            update(Article)
            .where(Article.id.in_(articles), Article.ticket_id == target.id)
            .values(ticket_id=source.id)
        )
    queries.remove_ticket_tags(session, target.id, record.get("tags_moved", []))
    queries.add_ticket_tags(session, source.id, record.get("tags", []), step.now)
    _restore_participants(session, source, target, record)
    _restore_deadlines(step, source, target, record["previous"])
    source.merged_into_id = None
    source.merged_at = None
    source.updated_at = target.updated_at = step.now
    add_event(step, source, "unmerged", source=source.number, target=target.number, by=by, via=via)
    add_event(step, target, "unmerged", source=source.number, target=target.number, by=by, via=via)
    return target


def _merge_record(session: Session, source: Ticket) -> dict[str, Any] | None:
    query = (
        select(Event.data)
        .where(Event.ticket_id == source.id, Event.type == "merged_into")
        .order_by(Event.id.desc())
        .limit(1)
    )
    return session.scalar(query)


def _restore_participants(
    session: Session, source: Ticket, target: Ticket, record: dict[str, Any]
) -> None:
    gone = [p["address"] for p in record.get("participants_moved", [])]
    if record.get("requester_added"):
        gone.append(record["requester_added"])
    if gone:
        session.execute(
            delete(TicketParticipant).where(
                TicketParticipant.ticket_id == target.id, TicketParticipant.address.in_(gone)
            )
        )
    rows = [{**participant_values(p), "ticket_id": source.id} for p in record["participants"]]
    if rows:
        session.execute(insert(TicketParticipant), rows)


def _restore_deadlines(
    step: Step, source: Ticket, target: Ticket, previous: dict[str, dict[str, Any]]
) -> None:
    """The source gets back what it had; the target its first-response deadline, unless it
    has been answered since. Both are looked at by the sweep again from now."""
    for name, value in previous["source"].items():
        setattr(source, name, _value(name, value))
    before = previous["target"]
    if target.first_responded_at is None:
        target.first_response_due_at = _value(
            "first_response_due_at", before["first_response_due_at"]
        )
    refresh_next_due(step, source)
    refresh_next_due(step, target)


def _value(name: str, value: Any) -> Any:
    if name == "status":
        return TicketStatus(value)
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value
