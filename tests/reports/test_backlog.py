"""The backlog on SQLite and PostgreSQL: tickets unresolved at the end of each week, day
or period, counted from the stored resolution time whatever happened before it, against
the definition worked out ticket by ticket here. The tickets sit on the edges: created or
resolved exactly at a week's end, resolved before the period or after it, resolved and
reopened across weeks, "resolved" before they were created (clocks apart), spam."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from mailbridge.core.report import Grouping, Report
from mailbridge.core.states import TicketStatus
from tests.support.report_world import THREE_WEEKS, Made, make_report_world, rome

pytestmark = pytest.mark.db

NOW = rome(20, 12, month=12)
WEEK_ONE_ENDS = rome(30, 0)  # Monday 30 November, local midnight
WEEK_TWO_ENDS = rome(7, 0, month=12)
OPEN, RESOLVED = TicketStatus.OPEN, TicketStatus.RESOLVED


def _reopened(at: datetime) -> tuple[str, datetime, dict[str, object]]:
    return ("followup", at, {"status_from": "resolved", "status_to": "open"})


TICKETS = [
    # Before the period: the oldest, resolved in week two; then one resolved after the
    # period; one resolved before it (nowhere); spam never resolved (nowhere).
    Made(created=rome(10, 9), resolved=rome(2, 10, month=12), status=RESOLVED, queue="a"),
    Made(created=rome(12, 9), resolved=rome(15, 9, month=12), status=RESOLVED, queue="b"),
    Made(created=rome(11, 9), resolved=rome(20, 9), status=RESOLVED, queue="a"),
    Made(created=rome(9, 9), status=TicketStatus.SPAM, queue="a"),
    # Resolved at the very end of week one: still unresolved at that end.
    Made(created=rome(25, 9), resolved=WEEK_ONE_ENDS, status=RESOLVED, queue="b"),
    # Created at the very start of week two: not in week one's backlog.
    Made(created=WEEK_ONE_ENDS, queue="a", status=OPEN),
    # Resolved in week one, reopened in week two, resolved again in week three: the stored
    # resolution is week three's, so it waits at the ends of weeks one and two.
    Made(
        created=rome(24, 9), resolved=rome(9, 11, month=12), status=RESOLVED, queue="b",
        events=(_reopened(rome(1, 10, month=12)),),
    ),
    # Resolved in week one, reopened in week two and open since: waiting from its start.
    Made(created=rome(26, 9), status=OPEN, queue="a", events=(_reopened(rome(2, 9, month=12)),)),
    # Created and resolved within week two: at no end.
    Made(created=rome(1, 9, month=12), resolved=rome(3, 9, month=12), status=RESOLVED),
    # "Resolved" a day before it was created: at no end either.
    Made(created=rome(2, 9, month=12), resolved=rome(1, 9, month=12), status=RESOLVED),
    # Created in week three a second before its end, never resolved.
    Made(created=rome(13, 23, month=12).replace(minute=59, second=59), queue="b", status=OPEN),
]  # fmt: skip


def waiting_at(tickets: list[Made], end: datetime) -> tuple[int, int | None]:
    """The definition: spam and merged aside, created before `end` and not resolved
    before it."""
    left_out = (TicketStatus.SPAM, TicketStatus.MERGED)
    waiting = [
        m
        for m in tickets
        if m.status not in left_out and m.created < end and (m.resolved or end) >= end
    ]
    oldest = min((m.created for m in waiting), default=None)
    return len(waiting), int((end - oldest).total_seconds()) if oldest else None


def backlogs(report: Report) -> list[tuple[int, int | None]]:
    return [(g.figures.backlog, g.figures.backlog_oldest_age_seconds) for g in report.groups]


def reports(tmp_path: Path, database_url: str, *groupings: Grouping) -> list[Report]:
    world = make_report_world(tmp_path, database_url, NOW)
    try:
        world.add(*(replace(m) for m in TICKETS))
        return [world.report(THREE_WEEKS, by) for by in groupings]
    finally:
        world.app.close()


def test_each_week_day_and_queue_against_the_definition(tmp_path: Path, database_url: str) -> None:
    weeks, days, queues = reports(tmp_path, database_url, "week", "day", "queue")
    for report in (weeks, days):
        ends = [g.end or THREE_WEEKS.start for g in report.groups]
        assert len(ends) == (3 if report is weeks else 21) and ends[-1] == THREE_WEEKS.end
        assert backlogs(report) == [waiting_at(TICKETS, end) for end in ends]
        assert (report.total.backlog, report.total.backlog_oldest_age_seconds) == waiting_at(
            TICKETS, THREE_WEEKS.end
        )
    assert [g.key for g in queues.groups] == ["a", "b", "default"]
    for group, waiting in zip(queues.groups, backlogs(queues), strict=True):
        assert waiting == waiting_at([m for m in TICKETS if m.queue == group.key], THREE_WEEKS.end)
    assert (queues.total.backlog, queues.total.backlog_oldest_age_seconds) == waiting_at(
        TICKETS, THREE_WEEKS.end
    )


def test_the_weeks_by_hand(tmp_path: Path, database_url: str) -> None:
    """The same, spelled out: who waits at each week's end, and the oldest of them."""
    (weeks,) = reports(tmp_path, database_url, "week")
    day = 86_400
    # week one: the oldest (10 Nov), the one resolved after the period (12 Nov), the one
    # resolved at the very end, the one resolved and reopened twice, the reopened one
    assert backlogs(weeks)[0] == (5, 19 * day + 15 * 3600)
    # week two: the oldest was resolved on 2 December; the one made at week one's end
    # waits, the one resolved at week one's end does not
    assert backlogs(weeks)[1] == (4, 24 * day + 15 * 3600)
    # week three: resolved again on the 9th, so three, and the last-second one
    assert backlogs(weeks)[2] == (4, 31 * day + 15 * 3600)
    assert weeks.total.backlog == 4
