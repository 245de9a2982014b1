"""The daily digest: each staff member's open tickets, and the team address's unassigned
ones, mailed once a business day at `[digest] hour` (when and how each line reads is pure,
in core/digest.py).

Each entry links to the ticket's reply-token address for its reader, so an answer written
from the digest is proven and relayed like an answer to a notification (inbound/staff.py).
It lives in inbound because those links are inbound's: the token addresses of
inbound/identity.py.

Once per reader and day, whichever instance runs it: a reader's day is claimed by one
UPDATE of `staff_state.digest_sent_on` that only matches while it holds another day, in the
transaction that queues the mail (docs/architecture.md, invariant 3). An empty digest
settles the day too and sends nothing; a reader who opted out (`digest_enabled` false) or
is away (`away_until` later than now) is passed over without settling it, so one who comes
back later that day still gets it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailbridge.app import App, Step
from mailbridge.core import digest
from mailbridge.core.correlate import format_tag
from mailbridge.core.message import Address
from mailbridge.core.states import INACTIVE_STATUSES, TicketStatus
from mailbridge.db import queries
from mailbridge.db.models import StaffState, Ticket
from mailbridge.inbound.identity import audience_of, token_address
from mailbridge.outbound.personal import PersonalMail, queue_personal_mail
from mailbridge.outbound.queue import Queued
from mailbridge.tickets.deadlines import open_deadlines

__all__ = ["MAX_TICKETS", "readers", "send_digests", "set_digest"]

log = logging.getLogger(__name__)

MAX_TICKETS = 1000  # read for one digest; the mail lists the first 100 (core/clip.py)


def readers(app: App) -> list[tuple[str, bool]]:
    """Who gets a digest: each staff address, then the team address; (address, is_team)."""
    staff = app.config.staff
    found = {address.lower(): False for address in staff.addresses}
    if staff.team_address:
        found[staff.team_address.lower()] = True
    return list(found.items())


def send_digests(app: App) -> int:
    """Queue today's digest for each reader it is due for; returns how many were queued.

    Cheap when there is nothing to do: before the hour, on a closed day or once everyone's
    day is settled it reads the clock, the calendar and one row per reader, and writes
    nothing."""
    settings = app.config.digest
    if settings is None:
        return 0
    now = app.clock.now()
    calendar = app.config.calendar
    day = digest.digest_day(
        now, settings.hour, calendar.business_calendar(now.astimezone(calendar.zone).year)
    )
    if day is None:
        return 0
    queued = 0
    for address, team in _unsettled(app, readers(app), day, now):
        with app.transaction() as session:
            step = Step(session, app, now)
            if _claim(step, address, day):
                queued += _send(step, address, team, day)
    return queued


def set_digest(
    step: Step, address: str, enabled: bool, *, by: str, via: str, ticket: Ticket | None = None
) -> None:
    """Turn `address`'s daily digest on or off (`#digest on|off`), with an event saying who
    and how; `ticket` is the one the command was written on, if any."""
    address = address.lower()
    _ensure_row(step, address)
    step.session.execute(
        update(StaffState)
        .where(StaffState.address == address)
        .values(digest_enabled=enabled, updated_at=step.now)
    )
    queries.insert_event(
        step.session,
        ticket.id if ticket is not None else None,
        step.now,
        "digest_changed",
        {"address": address, "enabled": enabled, "by": by, "via": via},
    )


# --- claiming the day -----------------------------------------------------------------------


def _unsettled(
    app: App, wanted: Sequence[tuple[str, bool]], day: date, now: datetime
) -> list[tuple[str, bool]]:
    """The readers whose day may still be claimed, read without taking any lock."""
    with app.sessions() as session:
        rows = {row.address: row for row in session.scalars(select(StaffState))}
    return [(address, team) for address, team in wanted if _may_claim(rows.get(address), day, now)]


def _may_claim(row: StaffState | None, day: date, now: datetime) -> bool:
    if row is None:
        return True
    away = row.away_until is not None and row.away_until > now
    return row.digest_enabled and not away and row.digest_sent_on != day.isoformat()


def _claim(step: Step, address: str, day: date) -> bool:
    """Settle `address`'s digest of `day` in this transaction; False when another run did
    already, or the reader opted out or is away. The UPDATE is the claim: on PostgreSQL a
    second instance waits for the row and then finds it settled; SQLite's write lock is
    taken first, so a second run reads what the first committed."""
    session = step.session
    _lock_for_writing(session)
    _ensure_row(step, address)
    today = day.isoformat()
    claimed = session.execute(
        update(StaffState)
        .where(
            StaffState.address == address,
            or_(StaffState.digest_sent_on.is_(None), StaffState.digest_sent_on != today),
            StaffState.digest_enabled.is_(True),
            or_(StaffState.away_until.is_(None), StaffState.away_until <= step.now),
        )
        .values(digest_sent_on=today, updated_at=step.now)
    )
    return bool(getattr(claimed, "rowcount", 0) == 1)


def _ensure_row(step: Step, address: str) -> None:
    """The reader's staff_state row, made with the defaults when there is none yet."""
    dialect = step.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement: Any = insert(StaffState).values(
        address=address, digest_enabled=True, updated_at=step.now
    )
    step.session.execute(statement.on_conflict_do_nothing(index_elements=["address"]))


def _lock_for_writing(session: Session) -> None:
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")


# --- the mail -------------------------------------------------------------------------------


def _send(step: Step, address: str, team: bool, day: date) -> int:
    """Queue the digest of `address`; 0 (and nothing queued) when it would be empty."""
    tickets = _tickets_of(step.session, address, team)
    if not tickets:
        log.info("digest for %s on %s: nothing open, not sent", address, day)
        return 0
    app, now = step.app, step.now
    language = app.config.templates.language
    zone = app.config.calendar.zone
    audience = audience_of(app, address)
    pairs = sorted(
        ((_item(app, ticket), ticket) for ticket in tickets),
        key=lambda pair: digest.sort_key(pair[0], now, zone),
    )
    entries: list[object] = [
        {
            "group": digest.group_of(item, now, zone),
            "line": digest.format_line(item, now, zone, language),
            "reply": digest.reply_link(
                token_address(app, ticket, audience, now), item.tag, ticket.subject
            ),
        }
        for item, ticket in pairs
    ]
    event = "team" if team else "personal"
    row = _queue(step, address, day, {"event": event, "queue_digest": entries}, language)
    queries.insert_event(
        step.session,
        None,
        now,
        "digest_sent",
        {"address": address, "day": day.isoformat(), "tickets": len(entries), "outbox_id": row.id},
    )
    return 1


def _tickets_of(session: Session, address: str, team: bool) -> Sequence[Ticket]:
    """The reader's open tickets (not done with, not spam): assigned to them, or for the
    team address unassigned."""
    query = select(Ticket).where(Ticket.status.not_in(INACTIVE_STATUSES))
    if team:
        query = query.where(Ticket.assignee.is_(None))
    else:
        query = query.where(func.lower(Ticket.assignee) == address)
    return session.scalars(query.order_by(Ticket.id).limit(MAX_TICKETS)).all()


def _item(app: App, ticket: Ticket) -> digest.QueueItem:
    running = [due for due in open_deadlines(ticket).values() if due is not None]
    return digest.QueueItem(
        tag=format_tag(app.config.tickets.tag_prefix, ticket.number or 0),
        customer=ticket.requester_name or ticket.requester_address,
        subject=ticket.subject,
        created_at=ticket.created_at,
        due=min(running, default=None),
        waiting=ticket.status == TicketStatus.WAITING,
    )


def _queue(step: Step, address: str, day: date, values: dict[str, object], language: str) -> Queued:
    """Render the `digest` template and add the mail to the outbox. It is about no single
    ticket, so it has no ticket tag and no ticket id; its answers go to the support address
    (each entry's link carries the ticket's own)."""
    app = step.app
    context = {
        **values,
        "staff_name": address,
        "support_address": app.sender.address,
        "company_name": app.config.templates.company,
    }
    return queue_personal_mail(
        step,
        PersonalMail(
            kind="digest",
            template="digest",
            context=context,
            to=Address("", address),
            language=language,
            unique=f"digest.{day:%Y%m%d}",
            reply_to=Address(app.sender.name, app.config.mailbox[0].address),
        ),
    )
