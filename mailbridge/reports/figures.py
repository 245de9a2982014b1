"""`make_report`: the service report's figures, counted and grouped by the database.

One pass writes a row of facts per ticket of the period into a temporary table (durations
on the ticket's clock, deadlines met, reopened, escalations, rating, FAQ); the figures are
then sums and percentiles of it per group, and the backlog is one more query. Nothing is
written to the database's own tables: the temporary tables go with the connection.
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
    case,
    false,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)

from mailbridge.app import App
from mailbridge.core.report import (
    TIME_GROUPINGS,
    UNHAPPY_TAG,
    Bucket,
    Counted,
    Grouping,
    Period,
    Waiting,
    backlog_at_ends,
    business_clock,
)
from mailbridge.core.states import TicketStatus
from mailbridge.db.models import Escalation, Event, Outbox, Ticket, TicketTag
from mailbridge.reports.sql import (
    BusinessAt,
    apart,
    business_at,
    epoch,
    facts,
    millis,
    position_in,
    temporary_tables,
    when,
)

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
def report_tables(
    app: App, period: Period, times: Sequence[Bucket], by: Grouping, now: datetime
) -> Iterator[Connection]:
    """A connection holding the report's temporary tables, filled for `period` grouped
    `by` into `times`; closed (not returned to the pool) at the end."""
    zone = app.config.calendar.zone
    business = [p.name for p in app.config.sla if p.business_hours]
    stretches = []
    if business:
        cal = app.config.calendar.business_calendar(period.start.astimezone(zone).year)
        stretches = business_clock(cal, period.start, max(now, period.end))
    with app.engine.connect() as connection:
        try:
            temporary_tables(connection, stretches)
            at = business_at(connection, stretches)
            collect_facts(connection, period, [b.end for b in times], by, (business, at), now)
            yield connection
        finally:
            # The temporary tables go with the connection, whatever state it is in.
            connection.invalidate()


def collect_facts(
    connection: Connection,
    period: Period,
    ends: Sequence[datetime],
    by: Grouping,
    clock: tuple[Sequence[str], BusinessAt],
    now: datetime,
) -> None:
    """One row of facts for every ticket that came in during the period, in the bucket
    of the sorted bucket `ends` it came in; `clock`: the policies on business hours, and
    business time at a moment."""
    business, at = clock
    f = _on_its_clock(_tickets(period, ends, by, business, now), at).c
    rows = select(
        f.position,
        f.ticket_id,
        f.grp,
        millis(f.sent - f.created),
        millis(f.responded_on_clock - f.created_on_clock),
        f.first_met,
        f.first_decided,
        millis(f.resolved_on_clock - f.created_on_clock),
        f.resolution_met,
        f.resolution_decided,
        f.reopened,
        f.escalations,
        f.unhappy,
        f.rating,
        f.faq_solved,
    )
    connection.execute(facts.insert().from_select([c.name for c in facts.c], rows))


def _tickets(
    period: Period, ends: Sequence[datetime], by: Grouping, business: Sequence[str], now: datetime
) -> FromClause:
    """Each ticket of the period with its moments in seconds since the epoch, whether its
    policy counts business hours, and what it counts for."""
    t = _ticket
    ack, escalated, rated = _acks(period), _escalations(period), _ratings(period)
    first_due, resolution_due = t.c.first_response_due_at, t.c.resolution_due_at
    # A ticket resolved without an answer (the customer's "solved") owed none after that;
    # the resolution clock stops while the ticket waits on the customer.
    answered = func.coalesce(t.c.first_responded_at, t.c.resolved_at)
    stopped = func.coalesce(t.c.waiting_since, t.c.resolved_at)
    first_met = t.c.first_responded_at <= first_due
    resolution_met = and_(t.c.resolved_at.is_not(None), stopped <= resolution_due)
    unhappy = select(_tag.c.ticket_id).where(_tag.c.tag == UNHAPPY_TAG)
    query = (
        select(
            position_in(t.c.created_at, ends).label("position"),
            t.c.id.label("ticket_id"),
            (GROUP_COLUMNS[by] if by in GROUP_COLUMNS else null()).label("grp"),
            (t.c.sla_policy.in_(business) if business else false()).label("business"),
            epoch(t.c.created_at).label("created"),
            epoch(ack.c.sent).label("sent"),
            epoch(t.c.first_responded_at).label("responded"),
            epoch(t.c.resolved_at).label("resolved"),
            when(first_met).label("first_met"),
            when(or_(first_met, func.coalesce(answered, now) > first_due)).label("first_decided"),
            when(resolution_met).label("resolution_met"),
            when(or_(resolution_met, func.coalesce(stopped, now) > resolution_due)).label(
                "resolution_decided"
            ),
            when(t.c.id.in_(_reopened(period))).label("reopened"),
            func.coalesce(escalated.c.fired, 0).label("escalations"),
            when(t.c.id.in_(unhappy)).label("unhappy"),
            rated.c.good.label("rating"),
            when(t.c.id.in_(_faq_solved(period))).label("faq_solved"),
        )
        .select_from(
            t.outerjoin(ack, ack.c.ticket_id == t.c.id)
            .outerjoin(escalated, escalated.c.ticket_id == t.c.id)
            .outerjoin(rated, rated.c.ticket_id == t.c.id)
        )
        .where(
            t.c.created_at >= period.start,
            t.c.created_at < period.end,
            t.c.status.not_in(LEFT_OUT),
        )
    )
    return apart(query)


def _on_its_clock(tickets: FromClause, at: BusinessAt) -> FromClause:
    """The tickets with creation, first response and resolution on their policy's clock:
    business seconds since the clock's origin, or seconds since the epoch; each worked out
    once, though creation's is read twice."""
    r = tickets.c

    def on_clock(moment: ColumnElement[float]) -> ColumnElement[float]:
        return case((moment.is_(None), null()), (r.business, at(moment)), else_=moment)

    return apart(
        select(
            *r,
            on_clock(r.created).label("created_on_clock"),
            on_clock(r.responded).label("responded_on_clock"),
            on_clock(r.resolved).label("resolved_on_clock"),
        )
    )


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
    """Each rated ticket's latest rating: 1 "solved", 0 "not solved". Numbered newest
    first in one pass over the ratings, where the latest's id and then its row took two
    reads of each."""
    newest_first = func.row_number().over(partition_by=Event.ticket_id, order_by=Event.id.desc())
    ranked = (
        select(
            Event.ticket_id,
            when(Event.data["verdict"].as_string() == "good").label("good"),
            newest_first.label("newest"),
        )
        .where(Event.type == "rated", Event.at >= period.start)
        .subquery()
    )
    return select(ranked.c.ticket_id, ranked.c.good).where(ranked.c.newest == 1).subquery()


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


def backlog(connection: Connection, by: Grouping | None, times: Sequence[Bucket]) -> Waiting:
    """Per group, the tickets (created at any time) unresolved at the end of its time, and
    the oldest one's creation: per bucket position for the time groupings, at the end of
    the period (the last bucket's) for the others; by None, one total at that end, under
    the key None."""
    if by in TIME_GROUPINGS:
        return _backlog_by_time(connection, times)
    end = times[-1].end
    key = _tag.c.tag if by == "tag" else GROUP_COLUMNS[by] if by else null()
    unresolved = _unresolved(end, end, key, tag=by == "tag")
    query = select(func.count(), func.min(unresolved.c.created), unresolved.c.key).group_by(
        unresolved.c.key
    )
    return {row[2]: (int(row[0]), row[1]) for row in connection.execute(query)}


def _backlog_by_time(connection: Connection, times: Sequence[Bucket]) -> Waiting:
    """A ticket is unresolved at the end of each bucket from the one it came in (0 if it
    came in before the period) to the one before it was resolved (the last if it was
    not): one pass over the tickets unresolved at the first end counts them by that span,
    and the spans make every bucket's backlog (`core.report.backlog_at_ends`), where one
    look per bucket read the never-resolved tickets once for each."""
    last, ends = len(times) - 1, [b.end for b in times]
    t = _ticket
    # Never resolved and older than the period, most of a backlog: one span, all counted
    # at once.
    older = (
        select(literal(0), literal(last), func.count(), func.min(t.c.created_at))
        .where(
            t.c.resolved_at.is_(None),
            t.c.created_at < times[0].start,
            t.c.status.not_in(LEFT_OUT),
        )
        .having(func.count() > 0)
    )
    rest = _unresolved(ends[0], ends[-1], null(), tag=False, since=times[0].start)
    resolved_in = position_in(rest.c.resolved, ends) - literal(1)
    spans = apart(
        select(
            position_in(rest.c.created, ends).label("first"),
            case((rest.c.resolved.is_(None), literal(last)), else_=resolved_in).label("last"),
            rest.c.created,
        )
    )
    counted_spans = (
        select(spans.c.first, spans.c.last, func.count(), func.min(spans.c.created))
        # Most tickets are resolved in the bucket they came in: unresolved at no end.
        .where(spans.c.first <= spans.c.last)
        .group_by(spans.c.first, spans.c.last)
    )
    rows = connection.execute(union_all(older, counted_spans))
    return dict(enumerate(backlog_at_ends([tuple(row) for row in rows], last)))


def _unresolved(
    first_end: datetime,
    end: datetime,
    key: ColumnElement[Any],
    *,
    tag: bool,
    since: datetime | None = None,
) -> FromClause:
    """The tickets (spam and merged left out) created before `end` and unresolved at
    `first_end`, the never-resolved ones only if created `since`: two range scans of
    `ix_ticket_resolved_at_created_at_status` (never resolved, resolved since), neither
    reading the table unless `key` is a ticket column."""
    t = _ticket
    never: ColumnElement[bool] = t.c.resolved_at.is_(None)
    if since is not None:
        never = and_(never, t.c.created_at >= since)
    parts = []
    for unresolved in (never, t.c.resolved_at >= first_end):
        source: FromClause = t.outerjoin(_tag, _tag.c.ticket_id == t.c.id) if tag else t
        parts.append(
            select(
                t.c.created_at.label("created"),
                t.c.resolved_at.label("resolved"),
                key.label("key"),
            )
            .select_from(source)
            .where(unresolved, t.c.created_at < end, t.c.status.not_in(LEFT_OUT))
        )
    return union_all(*parts).subquery()
