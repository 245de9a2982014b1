"""The worst waits of the report's pictures, found by the database: the tickets of a period
that waited longest for their first answer, and those still unanswered at its end, each wait
on the ticket's policy clock (business time where the policy counts it), as the report's
first-response figures are.

Business time comes from the report's clock table (reports/sql.py), made here in a
connection of our own and gone with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Subquery,
    and_,
    false,
    func,
    literal,
    or_,
    select,
    union_all,
)

from mailbridge.app import App
from mailbridge.core.correlate import format_tag
from mailbridge.core.report import Period, business_clock, seconds
from mailbridge.core.report_pictures import Wait
from mailbridge.db.models import Ticket, UTCDateTime
from mailbridge.reports.figures import LEFT_OUT
from mailbridge.reports.sql import BusinessAt, business_at, clock_table, elapsed

__all__ = ["WAITS_SHOWN", "Waits", "find_waits"]

WAITS_SHOWN = 10
_ticket = Ticket.__table__


@dataclass(frozen=True, slots=True)
class Waits:
    """What the table of waits shows: the longest answered, and the unanswered."""

    longest: tuple[Wait, ...]
    unanswered: tuple[Wait, ...]
    unanswered_count: int


def find_waits(app: App, period: Period, now: datetime, limit: int = WAITS_SHOWN) -> Waits:
    """The `limit` longest first-response waits of the tickets that came in during `period`
    (answered by now), and the tickets unanswered at its end (or now, when it has not ended
    yet), longest wait first, with how many those are in all."""
    end = min(period.end, now)
    waiting = _unanswered_at(end)
    with app.engine.connect() as connection:
        count, oldest = connection.execute(
            select(func.count(), func.min(waiting.c.created_at))
        ).one()
        start = min(period.start, oldest) if oldest is not None else period.start
        with _clock_table(app, connection, start, max(now, period.end)) as at:
            longest = _longest(app, at, connection, period, limit)
            unanswered = _unanswered(app, at, connection, waiting, end, limit)
    return Waits(tuple(longest), tuple(unanswered), int(count))


@contextmanager
def _clock_table(
    app: App, connection: Connection, start: datetime, end: datetime
) -> Iterator[BusinessAt]:
    """Business time over [start, end] (on SQLite from a temporary table); the connection
    is invalidated afterwards, which drops the table whatever state the connection is in."""
    try:
        stretches = []
        if any(policy.business_hours for policy in app.config.sla):
            calendar = app.config.calendar
            cal = calendar.business_calendar(start.astimezone(calendar.zone).year)
            stretches = business_clock(cal, start, end)
        clock_table(connection, stretches)
        yield business_at(connection, stretches)
    finally:
        connection.invalidate()


def _on_business(app: App, policy: ColumnElement[str]) -> ColumnElement[bool]:
    business = [p.name for p in app.config.sla if p.business_hours]
    return policy.in_(business) if business else false()


def _unanswered_at(end: datetime) -> Subquery:
    """The tickets that came in before `end` and were neither answered nor resolved (nor
    closed) by then: two range scans of the index on (resolved_at, created_at), unresolved
    still or resolved after `end`, as the backlog's (a scan of every ticket created before
    `end` otherwise: 0.7 s of a million on SQLite)."""
    t = _ticket.c
    parts = [
        select(
            t.id, t.number, t.queue, t.subject, t.created_at, t.sla_policy, t.first_response_due_at
        ).where(
            unresolved,
            t.created_at < end,
            or_(t.first_responded_at.is_(None), t.first_responded_at >= end),
            t.status.not_in(LEFT_OUT),
        )
        for unresolved in (t.resolved_at.is_(None), t.resolved_at >= end)
    ]
    return union_all(*parts).subquery()


def _longest(
    app: App, at: BusinessAt, connection: Connection, period: Period, limit: int
) -> list[Wait]:
    t = _ticket.c
    waited = elapsed(at, t.created_at, t.first_responded_at, _on_business(app, t.sla_policy))
    late = and_(
        t.first_response_due_at.is_not(None), t.first_responded_at > t.first_response_due_at
    )
    query = (
        select(t.number, t.queue, t.subject, waited.label("waited"), late.label("late"))
        .where(
            t.created_at >= period.start,
            t.created_at < period.end,
            t.first_responded_at.is_not(None),
            t.status.not_in(LEFT_OUT),
        )
        .order_by(waited.desc(), t.id)
        .limit(limit)
    )
    return [_wait(app, row) for row in connection.execute(query)]


def _unanswered(
    app: App,
    at: BusinessAt,
    connection: Connection,
    waiting: Subquery,
    end: datetime,
    limit: int,
) -> list[Wait]:
    w = waiting.c
    at_end = literal(end, UTCDateTime())
    waited = elapsed(at, w.created_at, at_end, _on_business(app, w.sla_policy))
    late = and_(w.first_response_due_at.is_not(None), w.first_response_due_at < at_end)
    query = (
        select(w.number, w.queue, w.subject, waited.label("waited"), late.label("late"))
        .order_by(waited.desc(), w.id)
        .limit(limit)
    )
    return [_wait(app, row) for row in connection.execute(query)]


def _wait(app: App, row: Row[Any]) -> Wait:
    number, queue, subject, waited, late = tuple(row)
    return Wait(
        tag=format_tag(app.config.tickets.tag_prefix, number or 0),
        queue=queue,
        waited=max(0, seconds(waited) or 0),
        late=bool(late),
        subject=subject,
    )
