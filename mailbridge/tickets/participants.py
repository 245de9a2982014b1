"""A ticket's participants: the people besides the requester who get staff answers in Cc.

They join when a customer copies them (`from_customer_mail`, chosen by
core.participants), or when staff add them (`#cc add`, `mailbridge tickets cc N --add`);
staff remove them (`#cc remove`, `#cc none`, `--remove`, `--none`). A removed participant
keeps its row with `removed_at`, so later customer mail does not bring it back; only staff
add it again. Every change is a `participants_changed` event with who (`by`) and how
(`via`). Runs inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Final

from sqlalchemy import event, select
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from mailbridge.app import App, Step
from mailbridge.core.clip import clip_text
from mailbridge.core.message import Address, ParsedMessage
from mailbridge.core.participants import (
    MAX_ACTIVE,
    MAX_NEW_PER_MAIL,
    OWN,
    Exclusions,
    choose_participants,
    skipped_summary,
)
from mailbridge.core.staff import StaffMessage, cc_change
from mailbridge.db.models import Ticket, TicketParticipant
from mailbridge.tickets.events import add_event
from mailbridge.tickets.requester import STORED_NAME

VIA_MAIL: Final = "mail"
VIA_COMMAND_LINE: Final = "command line"
EVENT: Final = "participants_changed"


def exclusions(app: App) -> Exclusions:
    """Our own addresses, and staff: the configured addresses and domains, the team and
    escalation addresses (mail to them is mail to staff)."""
    staff = app.config.staff
    return Exclusions.of(
        app.identity.own_addresses,
        [*staff.addresses, staff.team_address or "", staff.escalation_address or ""],
        staff.domains,
    )


def _rows(step: Step, ticket: Ticket) -> dict[str, TicketParticipant]:
    known = _known(step.session, ticket.id)
    if known is None:
        query = select(TicketParticipant).where(TicketParticipant.ticket_id == ticket.id)
        known = list(step.session.scalars(query))
    return {row.address: row for row in known}


_KNOWN = "mailbridge.participants_known"  # session.info: ticket id -> its participant rows


@contextmanager
def rows_known(session: Session, ticket_ids: Collection[int]) -> Iterator[None]:
    """Inside, the participant rows of these tickets (locked by the caller, so nobody else
    changes them) are read once, in one statement, where each mail on them would ask
    again. A participant added or deleted, a statement writing participants, or a
    rolled-back savepoint makes them be asked again, as without this."""
    if not ticket_ids or _KNOWN in session.info:
        yield
        return
    known: dict[int, list[TicketParticipant]] = {ticket_id: [] for ticket_id in ticket_ids}
    query = select(TicketParticipant).where(TicketParticipant.ticket_id.in_(sorted(ticket_ids)))
    for row in session.scalars(query):
        known[row.ticket_id].append(row)
    session.info[_KNOWN] = known
    try:
        yield
    finally:
        session.info.pop(_KNOWN, None)


def _known(session: Session, ticket_id: int) -> list[TicketParticipant] | None:
    known: dict[int, list[TicketParticipant]] | None = session.info.get(_KNOWN)
    if known is None or ticket_id not in known:
        return None
    if any(isinstance(o, TicketParticipant) for o in (*session.new, *session.deleted)):
        session.info.pop(_KNOWN, None)  # one joined or left: asked again from now on
        return None
    return known[ticket_id]


_BARE = "mailbridge.tickets_without_participants"  # session.info: opened now, none joined


def opened(session: Session, ticket: Ticket) -> None:
    """The ticket was opened in this transaction: until one joins, it has no participants,
    and asking costs no query."""
    session.info.setdefault(_BARE, set()).add(ticket.id)


@event.listens_for(Session, "do_orm_execute")
def _rows_written(state: ORMExecuteState) -> None:
    """A statement writing participants (a merge's) may give any ticket some."""
    session = state.session
    bare = session.info.get(_BARE)
    if (
        (bare or _KNOWN in session.info)
        and not state.is_select
        and any(mapper.class_ is TicketParticipant for mapper in state.all_mappers)
    ):
        if bare:
            bare.clear()
        session.info.pop(_KNOWN, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_bare(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_BARE, None)
        session.info.pop(_KNOWN, None)


@event.listens_for(Session, "before_flush")
def _rows_flushed(session: Session, *_: object) -> None:
    """A participant added or deleted is one the rows read do not show."""
    if _KNOWN in session.info and any(
        isinstance(o, TicketParticipant) for o in (*session.new, *session.deleted)
    ):
        session.info.pop(_KNOWN, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_known(session: Session, rolled_back: SessionTransaction) -> None:
    session.info.pop(_KNOWN, None)  # rows it added are gone, rows it changed expired


def active(session: Session, ticket: Ticket) -> list[TicketParticipant]:
    """The ticket's active participants, in the order they joined."""
    if ticket.id in session.info.get(_BARE, ()):
        return []
    known = _known(session, ticket.id)
    if known is not None:
        now = [row for row in known if row.removed_at is None]
        return sorted(now, key=lambda row: (row.added_at, row.address))
    query = (
        select(TicketParticipant)
        .where(TicketParticipant.ticket_id == ticket.id, TicketParticipant.removed_at.is_(None))
        .order_by(TicketParticipant.added_at, TicketParticipant.address)
    )
    return list(session.scalars(query))


def cc_of(step: Step, ticket: Ticket) -> list[Address]:
    """Whom a staff answer goes to in Cc: the active participants, never the requester."""
    return [
        Address(p.name, p.address)
        for p in active(step.session, ticket)
        if p.address != ticket.requester_address
    ]


def from_customer_mail(step: Step, ticket: Ticket, parsed: ParsedMessage) -> list[str]:
    """The addresses the customer's To and Cc add to the ticket (core.participants decides
    which); records one event when any joined or any were turned away for a reason."""
    sender = parsed.from_.address if parsed.from_ else ""
    rules = exclusions(step.app)
    usual = {ticket.requester_address, sender}
    named = [a for a in (*parsed.to, *parsed.cc) if a.address not in usual]
    if not sender or all(rules.why_not(a.address) == OWN for a in named):
        return []  # the common mail, to us alone: no query
    rows = _rows(step, ticket)
    current = {a for a, r in rows.items() if r.removed_at is None}
    choice = choose_participants(
        named,
        rules,
        requester=ticket.requester_address,
        sender=sender,
        active=current,
        removed={a for a, r in rows.items() if r.removed_at is not None},
        limit=max(0, min(MAX_NEW_PER_MAIL, MAX_ACTIVE - len(current))),
    )
    for address in choice.add:
        _join(step, ticket, rows, address, sender)
    added = [a.address for a in choice.add]
    if added or choice.skipped:
        add_event(
            step,
            ticket,
            EVENT,
            by=sender,
            via=VIA_MAIL,
            added=added,
            removed=[],
            **skipped_summary(choice.skipped),
        )
    return added


def _join(
    step: Step, ticket: Ticket, rows: dict[str, TicketParticipant], address: Address, by: str
) -> None:
    row = rows.get(address.address)
    name = clip_text(address.name, STORED_NAME)
    step.session.info.get(_BARE, set()).discard(ticket.id)
    if row is None:
        row = TicketParticipant(
            ticket_id=ticket.id, address=address.address, name=name, added_at=step.now
        )
        step.session.add(row)
        rows[address.address] = row
    elif name:
        row.name = name
    row.added_by, row.added_at, row.removed_at = by, step.now, None


def refusals(app: App, requester: str, addresses: Sequence[Address]) -> list[str]:
    """Why staff may not add these addresses to a ticket that answers `requester`: ours,
    staff, the requester, or unwritable."""
    rules = exclusions(app)
    problems = []
    for address in addresses:
        why = rules.why_not(address.address)
        if not why and address.address.lower() == requester.lower():
            why = "the requester, who gets every answer anyway"
        if why:
            problems.append(f"{address.address} is {why} and cannot be a participant")
    return problems


def add(step: Step, ticket: Ticket, addresses: Sequence[Address], by: str, via: str) -> list[str]:
    """Staff add (or add again) these addresses; the caller checked them (`refusals`)."""
    rows = _rows(step, ticket)
    added = []
    for address in addresses:
        lowered = Address(address.name, address.address.lower())
        row = rows.get(lowered.address)
        if row is not None and row.removed_at is None:
            continue
        _join(step, ticket, rows, lowered, by)
        added.append(lowered.address)
    _record(step, ticket, by, via, added, [])
    return added


def remove(step: Step, ticket: Ticket, addresses: Sequence[str], by: str, via: str) -> list[str]:
    """Staff remove these addresses (None of them active: nothing changes)."""
    rows = _rows(step, ticket)
    removed = []
    for address in dict.fromkeys(a.lower() for a in addresses):
        row = rows.get(address)
        if row is not None and row.removed_at is None:
            row.removed_at = step.now
            removed.append(address)
    _record(step, ticket, by, via, [], removed)
    return removed


def remove_all(step: Step, ticket: Ticket, by: str, via: str) -> list[str]:
    """`#cc none`: every active participant removed."""
    return remove(step, ticket, list(_rows(step, ticket)), by, via)


def _record(
    step: Step, ticket: Ticket, by: str, via: str, added: list[str], removed: list[str]
) -> None:
    if added or removed:
        step.session.flush()
        ticket.updated_at = step.now
        add_event(step, ticket, EVENT, by=by, via=via, added=added, removed=removed)


# --- #cc in a staff reply -------------------------------------------------------------------


def command_problems(app: App, requester: str, message: StaffMessage) -> list[str]:
    """What keeps the `#cc` lines of a staff reply from running on a ticket that answers
    `requester`: an address staff may not add (parse_commands refused malformed ones)."""
    problems: list[str] = []
    for command in message.commands:
        change = cc_change(command.argument) if command.name == "cc" else None
        if change is not None and change.verb == "add":
            problems.extend(
                f"#cc {command.argument}: {p}" for p in refusals(app, requester, change.addresses)
            )
    return problems


def apply_commands(step: Step, ticket: Ticket, message: StaffMessage, by: str) -> dict[str, object]:
    """Every `#cc` line, in order; for the staff reply's event: {} or the net change."""
    added: list[str] = []
    removed: list[str] = []
    for command in message.commands:
        change = cc_change(command.argument) if command.name == "cc" else None
        if change is None:
            continue
        if change.verb == "add":
            added += add(step, ticket, change.addresses, by, VIA_MAIL)
        elif change.verb == "remove":
            removed += remove(step, ticket, [a.address for a in change.addresses], by, VIA_MAIL)
        else:
            removed += remove_all(step, ticket, by, VIA_MAIL)
    changes: dict[str, object] = {}
    if added:
        changes["participants_added"] = added
    if removed:
        changes["participants_removed"] = removed
    return changes
