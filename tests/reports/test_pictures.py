"""The pictures' own queries on SQLite and PostgreSQL: tickets per local hour of arrival
(across a change of daylight saving time, at the exact hour), and the worst waits on each
ticket's policy clock (business hours across a weekend and a holiday), unanswered ones at
the end of the period; spam and merged tickets nowhere, no customer address in the page."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from mailbridge.core.report import period_of_dates
from mailbridge.core.report_html import render_html
from mailbridge.core.report_pictures import Wait, render_text
from mailbridge.core.states import TicketStatus
from mailbridge.reports.pictures import hours_of_arrival, make_pictures
from mailbridge.reports.waits import find_waits
from tests.support.report_world import ROME, THREE_WEEKS, Made, ReportWorld, make_report_world, rome

pytestmark = pytest.mark.db

NOW = rome(20, 12, month=12)
H = 3600


def office(**keys: object) -> Made:
    """On the office's business hours (09-13, 14-18, Monday to Friday, Italian holidays)."""
    return Made(**{"policy": "office", "queue": "billing", **keys})  # type: ignore[arg-type]


KNOWN = [
    # Friday 17:00 to Monday 10:00: an office hour each side of the weekend
    office(created=rome(27, 17), responded=rome(30, 10), first_due=rome(30, 17), subject="A"),
    # calendar time: 3 hours, in time; 11 hours, late
    Made(created=rome(24, 10), responded=rome(24, 13), first_due=rome(24, 18), subject="B"),
    Made(created=rome(25, 9), responded=rome(25, 20), first_due=rome(25, 17), subject="C"),
    # Monday 7 December 17:00 to Wednesday 10:00 across the holiday of the 8th: 2 hours
    office(created=rome(7, 17, month=12), responded=rome(9, 10, month=12), subject="D"),
    # never answered: late; and on Friday evening, half an office hour before the end
    Made(created=rome(2, 9, month=12), first_due=rome(2, 17, month=12), status=TicketStatus.NEW,
         subject="E"),
    office(created=rome(11, 17, 30, month=12), first_due=rome(14, 10, month=12),
           status=TicketStatus.NEW, subject="F"),
    # spam and merged, unanswered: nowhere
    Made(created=rome(1, 10, month=12), status=TicketStatus.SPAM, subject="G"),
    Made(created=rome(1, 11, month=12), status=TicketStatus.MERGED, subject="H"),
    # from before the period, never answered
    Made(created=rome(16, 10), status=TicketStatus.OPEN, subject="I"),
    # Sunday 10:00, answered the next morning, after the period: late, and unanswered at its end
    Made(created=rome(13, 10, month=12), responded=rome(14, 9, month=12),
         first_due=rome(13, 18, month=12), subject="J"),
    # resolved by the customer, and closed by staff, without an answer: owe none
    Made(created=rome(3, 10, month=12), resolved=rome(3, 11, month=12),
         status=TicketStatus.RESOLVED, subject="K"),
    Made(created=rome(4, 10, month=12), resolved=rome(4, 12, month=12),
         status=TicketStatus.CLOSED, subject="L"),
]  # fmt: skip


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> ReportWorld:
    made = make_report_world(tmp_path, database_url, NOW)
    made.add(*(replace(m) for m in KNOWN))
    return made


def wait(subject: str, waited: int, late: bool) -> Wait:
    made = next(m for m in KNOWN if m.subject == subject)
    return Wait(f"[#{1001 + KNOWN.index(made)}]", made.queue, waited, late, subject)


def test_the_worst_waits_on_each_policy_clock(world: ReportWorld) -> None:
    try:
        found = find_waits(world.app, THREE_WEEKS, NOW)
        top_two = find_waits(world.app, THREE_WEEKS, NOW, limit=2)
    finally:
        world.app.close()
    assert found.longest == (
        wait("J", 23 * H, True),
        wait("C", 11 * H, True),
        wait("B", 3 * H, False),
        wait("A", 2 * H, False),  # 65 hours on the wall
        wait("D", 2 * H, False),  # 41 hours on the wall, a holiday between
    )
    assert found.unanswered == (
        wait("I", (27 * 24 + 14) * H, False),  # no deadline ran for it
        wait("E", (11 * 24 + 15) * H, True),
        wait("J", 14 * H, True),
        wait("F", H // 2, False),  # business time: Friday 17:30 to 18:00
    )
    assert found.unanswered_count == 4
    assert top_two.longest == found.longest[:2] and top_two.unanswered == found.unanswered[:2]
    assert top_two.unanswered_count == 4


def test_while_the_period_runs_the_waits_are_until_now(tmp_path: Path, database_url: str) -> None:
    world = make_report_world(tmp_path, database_url, rome(2, 12, month=12))
    try:
        world.add(Made(created=rome(30, 10), status=TicketStatus.NEW, subject="open"))
        found = find_waits(world.app, THREE_WEEKS, world.clock.now())
    finally:
        world.app.close()
    assert [w.waited for w in found.unanswered] == [(2 * 24 + 2) * H]


def test_arrivals_by_local_hour(world: ReportWorld) -> None:
    try:
        hours = hours_of_arrival(world.app, THREE_WEEKS)
    finally:
        world.app.close()
    # A, D, F at 17; B, J, K at 10; C and E at 9 sharp (not 8: the float of 09:00:00 is
    # not allowed to fall a hair short); L at 10 too. G, H (spam, merged) and I (before) not.
    expected = [0] * 24
    for hour, count in ((9, 2), (10, 4), (17, 3)):
        expected[hour] = count
    assert list(hours) == expected


def test_arrivals_across_the_end_of_summer_time(tmp_path: Path, database_url: str) -> None:
    world = make_report_world(tmp_path, database_url, NOW)
    october = period_of_dates(date(2026, 10, 19), date(2026, 11, 1), ROME)
    try:
        world.add(
            Made(created=rome(20, 10, month=10)),  # 08:00 UTC, summer time
            Made(created=rome(27, 10, month=10)),  # 09:00 UTC, winter time
            Made(created=rome(25, 2, 30, month=10)),  # the first 02:30 of the night it ends
            Made(created=rome(25, 2, 30, month=10) + timedelta(hours=1)),  # the second
        )
        hours = hours_of_arrival(world.app, october)
    finally:
        world.app.close()
    assert (hours[10], hours[2], sum(hours)) == (2, 2, 4)


def test_the_pictures_of_the_period_show_no_customer_address(world: ReportWorld) -> None:
    try:
        pictures = make_pictures(world.app, THREE_WEEKS, highlight="2026-12-07")
        empty = make_pictures(
            world.app, period_of_dates(date(2026, 11, 2), date(2026, 11, 8), ROME)
        )
    finally:
        world.app.close()
    assert [w.key for w in pictures.weeks] == ["2026-11-23", "2026-11-30", "2026-12-07"]
    assert [w.tickets_in for w in pictures.weeks] == [3, 3, 3]
    assert sum(pictures.hours) == pictures.total.tickets_in == 9
    assert (pictures.target.seconds, pictures.target.policy) == (8 * H, "standard")
    assert (pictures.first_day, pictures.last_day) == (date(2026, 11, 23), date(2026, 12, 13))
    for page in (render_html(pictures, "en"), render_text(pictures, "it")):
        assert "customer.example" not in page and "[#1010]" in page
    assert empty.weeks[0].tickets_in == 0 and sum(empty.hours) == 0
    assert (empty.longest, empty.unanswered, empty.unanswered_count) == ((), (), 0)
