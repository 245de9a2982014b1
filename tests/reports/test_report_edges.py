"""Moments on the edges of the report's arithmetic, on SQLite and PostgreSQL: a ticket
created at the very instant one week ends belongs to the next; business time counted from
before the first opening of the period's clock, to the instant an office closes, and to
the instant it opens again."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mailbridge.core.states import TicketStatus
from tests.support.report_world import THREE_WEEKS, Made, make_report_world, rome

pytestmark = pytest.mark.db

NOW = rome(20, 12, month=12)
HOUR = 3600


def test_edges_of_weeks_and_of_business_hours(tmp_path: Path, database_url: str) -> None:
    world = make_report_world(tmp_path, database_url, NOW)
    try:
        world.add(
            # Monday 23 November 07:00, before the office first opens in the period;
            # answered at 13:00 sharp (closing), resolved at 14:00 sharp (opening):
            # four office hours each.
            Made(
                created=rome(23, 7), policy="office", queue="billing",
                responded=rome(23, 13), first_due=rome(23, 17),
                resolved=rome(23, 14), resolution_due=rome(30, 17),
                status=TicketStatus.RESOLVED,
            ),
            # Created at the very instant week one ends (Monday 30 November, local
            # midnight), on the wall clock: week two's.
            Made(
                created=rome(30, 0), responded=rome(30, 0) + timedelta(seconds=90),
                first_due=rome(30, 8),
            ),
        )  # fmt: skip
        weeks = world.report(THREE_WEEKS, "week")
    finally:
        world.app.close()
    first, second, third = (g.figures for g in weeks.groups)
    assert (first.tickets_in, second.tickets_in, third.tickets_in) == (1, 1, 0)
    assert first.first_response_p50_seconds == 4 * HOUR
    assert first.resolution_p50_seconds == 4 * HOUR
    assert second.first_response_p50_seconds == 90
    assert (first.backlog, second.backlog, third.backlog) == (0, 1, 1)
