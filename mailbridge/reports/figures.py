"""`make_report`: the service report's figures, counted and grouped by the database.

One pass writes a row of facts per ticket of the period into a temporary table (durations
on the ticket's clock, deadlines met, reopened, escalations, rating, FAQ); the figures are
then sums and percentiles of it per group, and the backlog is one more query. Nothing is
written to the database's own tables: the temporary tables go with the transaction.
Where each figure comes from is said in the README ("mailbridge report").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Select,
    and_,
    false,
    func,
    null,
    or_,
    select,
    union_all,
)

from mailbridge.app import App
from mailbridge.core.report import (
    TIME_GROUPINGS,
    UNHAPPY_TAG,
    Counted,
    Grouping,
    Period,
    buckets,
    business_clock,
)
from mailbridge.core.states import TicketStatus
from mailbridge.db.models import Escalation, Event, Outbox, Ticket, TicketTag
from mailbridge.reports.sql import (
    analyze,
    business_elapsed,
    duration,
    facts,
    temporary_tables,
    when,
)
from mailbridge.reports.sql import bucket as bucket_table

__all__ = ["backlog", "counted", "group_key", "report_tables"]

LEFT_OUT = (TicketStatus.SPAM.value, TicketStatus.MERGED.value)
# An acknowledgement is queued with its ticket, in the same step; the margin only keeps the
# look-up of acknowledgements to the period's own rows.
ACK_MARGIN = timedelta(days=1)

_ticket = Ticket.__table__
_tag = TicketTag.__table__

# The ticket column each grouping groups by (the time groupings use the bucket).
GROUP_COLUMNS: dict[str, ColumnElement[Any]] = {
    "queue": _ticket.c.queue,
    "assignee": _ticket.c.assignee,
    "mailbox": _ticket.c.mailbox,
    "language": _ticket.c.language,
}


@contextmanager
def report_tables(app: App, period: Period, by: Grouping, now: datetime) -> Iterator[Connection]:
    """A connection holding the report's temporary tables, filled for `period`; closed
    (not returned to the pool) at the end."""
    zone = app.config.calendar.zone
    business = [p.name for p in app.config.sla if p.business_hours]
    stretches = []
    if business:
        cal = app.config.calendar.business_calendar(period.start.astimezone(zone).year)
        stretches = business_clock(cal, period.start, max(now, period.end))
    with app.engine.connect() as connection:
        try:
            temporary_tables(connection, stretches, buckets(period, by, zone))
            collect_facts(connection, period, by, business, now)
            yield connection
        finally:
            # The temporary tables go with the connection, whatever state it is in.
            connection.invalidate()


def collect_facts(
    connection: Connection, period: Period, by: Grouping, business: Sequence[str], now: datetime
) -> None:
    """One row of facts for every ticket that came in during the period."""
    t, b = _ticket, bucket_table
    on_business = t.c.sla_policy.in_(business) if business else false()
    ack, escalated, rated = _acks(period), _escalations(period), _ratings(period)
    first_due, resolution_due = t.c.first_response_due_at, t.c.resolution_due_at
    # A ticket resolved without an answer (the customer's "solved") owed none after that;
    # the resolution clock stops while the ticket waits on the customer.
    answered = func.coalesce(t.c.first_responded_at, t.c.resolved_at)
    stopped = func.coalesce(t.c.waiting_since, t.c.resolved_at)
    first_met = t.c.first_responded_at <= first_due
    resolution_met = and_(t.c.resolved_at.is_not(None), stopped <= resolution_due)
    rows = (
        select(
            t.c.id,
            b.c.position,
            GROUP_COLUMNS[by] if by in GROUP_COLUMNS else null(),
            duration(t.c.created_at, ack.c.sent),
            business_elapsed(t.c.created_at, t.c.first_responded_at, on_business),
            when(first_met),
            when(or_(first_met, func.coalesce(answered, now) > first_due)),
            business_elapsed(t.c.created_at, t.c.resolved_at, on_business),
            when(resolution_met),
            when(or_(resolution_met, func.coalesce(stopped, now) > resolution_due)),
            when(t.c.id.in_(_reopened(period))),
            func.coalesce(escalated.c.fired, 0),
            when(t.c.id.in_(select(_tag.c.ticket_id).where(_tag.c.tag == UNHAPPY_TAG))),
            rated.c.good,
            when(t.c.id.in_(_faq_solved(period))),
        )
        .select_from(
            b.join(t, and_(t.c.created_at >= b.c.starts, t.c.created_at < b.c.ends))
            .outerjoin(ack, ack.c.ticket_id == t.c.id)
            .outerjoin(escalated, escalated.c.ticket_id == t.c.id)
            .outerjoin(rated, rated.c.ticket_id == t.c.id)
        )
        .where(t.c.status.not_in(LEFT_OUT))
    )
    connection.execute(facts.insert().from_select([c.name for c in facts.c], rows))
    analyze(connection, facts)


def _acks(period: Period) -> FromClause:
    """When each ticket's first acknowledgement left (sent, or sent and then bounced)."""
    return (
        select(Outbox.ticket_id, func.min(Outbox.sent_at).label("sent"))
        .where(
            Outbox.kind == "ack",
            Outbox.created_at >= period.start,
            Outbox.created_at < period.end + ACK_MARGIN,
            Outbox.sent_at.is_not(None),
        )
        .group_by(Outbox.ticket_id)
        .subquery()
    )


def _escalations(period: Period) -> FromClause:
    """Escalation levels fired (warnings before a deadline are not escalations)."""
    return (
        select(Escalation.ticket_id, func.count().label("fired"))
        .where(Escalation.level > 0, Escalation.fired_at >= period.start)
        .group_by(Escalation.ticket_id)
        .subquery()
    )


def _events(kind: str, period: Period) -> Select[int | None]:
    return select(Event.ticket_id).where(Event.type == kind, Event.at >= period.start)


def _reopened(period: Period) -> Select[int | None]:
    """Tickets the customer opened again after they were resolved or closed."""
    closed = [TicketStatus.RESOLVED.value, TicketStatus.CLOSED.value]
    return _events("followup", period).where(Event.data["status_from"].as_string().in_(closed))


def _ratings(period: Period) -> FromClause:
    """Each rated ticket's latest rating: 1 "solved", 0 "not solved"."""
    latest = (
        select(Event.ticket_id, func.max(Event.id).label("last"))
        .where(Event.type == "rated", Event.at >= period.start)
        .group_by(Event.ticket_id)
        .subquery()
    )
    good = when(Event.data["verdict"].as_string() == "good")
    return (
        select(latest.c.ticket_id, good.label("good"))
        .select_from(latest.join(Event, Event.id == latest.c.last))
        .subquery()
    )


def _faq_solved(period: Period) -> Select[int | None]:
    """Tickets the customer said were solved after the acknowledgement offered FAQ answers
    (inbound/solved.py, inbound/acknowledge.py)."""
    offered = _events("faq_offered", period)
    return _events("resolved_by_customer", period).where(Event.ticket_id.in_(offered))


def group_key(by: Grouping) -> tuple[ColumnElement[Any], FromClause]:
    """The facts' group column, and what to select it from."""
    if by in TIME_GROUPINGS:
        return facts.c.position, facts
    if by == "tag":
        return _tag.c.tag, facts.outerjoin(_tag, _tag.c.ticket_id == facts.c.ticket_id)
    return facts.c.grp, facts


def counted(connection: Connection, by: Grouping | None) -> dict[object, Counted]:
    """The sums of the facts per group (by None: one total, under the key None)."""
    key, source = group_key(by) if by else (None, facts)
    f = facts.c
    sums = [
        func.count(),
        func.count(f.ack),
        func.sum(f.first_met),
        func.sum(f.first_decided),
        func.sum(f.resolution_met),
        func.sum(f.resolution_decided),
        func.sum(f.reopened),
        func.sum(f.escalations),
        func.sum(f.unhappy),
        func.count(f.rating),
        func.sum(f.rating),
        func.sum(f.faq_solved),
    ]
    query = select(*sums).select_from(source)
    if key is not None:
        query = query.add_columns(key).group_by(key)
    found = {}
    for row in connection.execute(query):
        values = [int(v or 0) for v in row[: len(sums)]]
        found[row[len(sums)] if key is not None else None] = Counted(*values)
    return found


def backlog(
    connection: Connection, by: Grouping | None, last: int
) -> dict[object, tuple[int, datetime | None]]:
    """Per group, the tickets unresolved at the end of its time and the oldest one's
    creation; by None: at the end of the period (the bucket numbered `last`)."""
    t, b = _ticket, bucket_table
    if by in TIME_GROUPINGS:
        key: ColumnElement[Any] | None = b.c.position
    elif by == "tag":
        key = _tag.c.tag
    else:
        key = GROUP_COLUMNS[by] if by else None
    parts = []
    # Unresolved still, or resolved after the end: two range scans of one index.
    for unresolved in (t.c.resolved_at.is_(None), t.c.resolved_at >= b.c.ends):
        source: FromClause = b.join(t, and_(unresolved, t.c.created_at < b.c.ends))
        if by == "tag":
            source = source.outerjoin(_tag, _tag.c.ticket_id == t.c.id)
        part = (
            select(
                t.c.created_at.label("created"), (key if key is not None else null()).label("key")
            )
            .select_from(source)
            .where(t.c.status.not_in(LEFT_OUT))
        )
        parts.append(part if by in TIME_GROUPINGS else part.where(b.c.position == last))
    both = union_all(*parts).subquery()
    query = select(func.count(), func.min(both.c.created), both.c.key).group_by(both.c.key)
    return {row[2]: (int(row[0]), row[1]) for row in connection.execute(query)}
