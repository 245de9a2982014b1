"""`make_pictures`: the data of the report's pictures (core/report_pictures.py), gathered from
the database: the weekly figures (`make_report` by week), the tickets per hour of arrival,
and the worst waits (reports/waits.py).

The hours are counted per quarter hour since the epoch, which both databases can do without a
time-zone table; each quarter is then put in its local hour of the calendar's zone (every
zone's offset is a whole number of quarter hours, whatever daylight saving time does).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import BigInteger

from mailbridge.app import App
from mailbridge.core.report import Period
from mailbridge.core.report_pictures import QUARTER, Pictures, Target, local_hours, weeks_of
from mailbridge.db.models import Ticket
from mailbridge.reports.figures import LEFT_OUT
from mailbridge.reports.make import make_report
from mailbridge.reports.sql import epoch, millis
from mailbridge.reports.waits import WAITS_SHOWN, find_waits

__all__ = ["default_target", "hours_of_arrival", "make_pictures"]

_ticket = Ticket.__table__


class quarter_of(FunctionElement[int]):
    """The whole quarter hours since the epoch of a number of seconds (rounded down)."""

    type = BigInteger()
    inherit_cache = True
    name = "quarter_of"


@compiles(quarter_of, "sqlite")
def _quarter_sqlite(element: quarter_of, compiler: Any, **kw: Any) -> str:
    # CAST truncates, which is rounding down for the times after 1970 tickets have.
    return f"CAST(({compiler.process(element.clauses, **kw)}) / {QUARTER} AS INTEGER)"


@compiles(quarter_of, "postgresql")
def _quarter_postgresql(element: quarter_of, compiler: Any, **kw: Any) -> str:
    return f"CAST(FLOOR(({compiler.process(element.clauses, **kw)}) / {QUARTER}) AS BIGINT)"


def hours_of_arrival(app: App, period: Period) -> tuple[int, ...]:
    """Tickets that came in during `period` (spam and merged left out) per local hour of
    the day in the calendar's zone, 0 to 23."""
    t = _ticket.c
    # To the millisecond first: SQLite's float seconds of 09:00:00 may be a hair under it.
    quarter = quarter_of(millis(epoch(t.created_at)))
    query = (
        select(quarter, func.count())
        .where(t.created_at >= period.start, t.created_at < period.end, t.status.not_in(LEFT_OUT))
        .group_by(quarter)
    )
    with app.engine.connect() as connection:
        counts = {int(q): int(n) for q, n in connection.execute(query)}
    return local_hours(counts, app.config.calendar.zone)


def default_target(app: App) -> Target:
    """The default policy's first-response target (the policy without match keys)."""
    policy = next(p for p in app.config.sla if p.is_default)
    return Target(
        seconds=int(policy.first_response.total_seconds()),
        business_hours=policy.business_hours,
        policy=policy.name,
    )


def make_pictures(
    app: App, period: Period, *, highlight: str | None = None, waits: int = WAITS_SHOWN
) -> Pictures:
    """The pictures of `period`, as of now; `highlight` names the week to set apart."""
    report = make_report(app, period, "week")
    now = report.made_at
    zone = app.config.calendar.zone
    found = find_waits(app, period, now, waits)
    return Pictures(
        first_day=period.start.astimezone(zone).date(),
        last_day=(period.end - timedelta(microseconds=1)).astimezone(zone).date(),
        zone=app.config.calendar.timezone,
        made_at=now,
        target=default_target(app),
        weeks=weeks_of(report),
        hours=hours_of_arrival(app, period),
        longest=found.longest,
        unanswered=found.unanswered,
        unanswered_count=found.unanswered_count,
        total=report.total,
        highlight=highlight,
    )
