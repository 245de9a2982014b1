"""When the weekly report is due and which weeks it shows: the moment read from the
configuration, the local week around daylight saving time, the four weeks before."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from mailbridge.core.weekly_report import WeeklyMoment, due_week, parse_weekly_on, shown_period

pytestmark = pytest.mark.unit

ROME = ZoneInfo("Europe/Rome")
MONDAY_EIGHT = WeeklyMoment(0, time(8, 0))


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("mon 08:00", WeeklyMoment(0, time(8, 0))),
        ("  Fri   17:30 ", WeeklyMoment(4, time(17, 30))),
        ("sun 0:05", WeeklyMoment(6, time(0, 5))),
        ("sat 23:59", WeeklyMoment(5, time(23, 59))),
    ],
)
def test_moments_read(text: str, moment: WeeklyMoment) -> None:
    assert parse_weekly_on(text) == moment


@pytest.mark.parametrize(
    "text", ["monday 08:00", "mon 8", "mon 24:00", "mon 08:60", "08:00", "mon", "lun 08:00", ""]
)
def test_bad_moments_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match='a weekday and a 24-hour time like "mon 08:00"'):
        parse_weekly_on(text)


def rome(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ROME).astimezone(UTC)


def test_due_from_the_moment_until_the_end_of_the_week() -> None:
    # Monday 23 November 2026
    assert due_week(rome(23, 7, 59), MONDAY_EIGHT, ROME) is None
    assert due_week(rome(23, 8), MONDAY_EIGHT, ROME) == date(2026, 11, 16)
    assert due_week(rome(29, 23, 59), MONDAY_EIGHT, ROME) == date(2026, 11, 16)  # Sunday
    assert due_week(rome(30, 7), MONDAY_EIGHT, ROME) is None  # the next Monday, early
    assert due_week(rome(30, 8), MONDAY_EIGHT, ROME) == date(2026, 11, 23)
    friday = WeeklyMoment(4, time(17, 0))
    assert due_week(rome(26, 23), friday, ROME) is None  # Thursday
    assert due_week(rome(27, 17), friday, ROME) == date(2026, 11, 16)


def test_the_moment_is_local_across_daylight_saving_time() -> None:
    # Rome leaves summer time on Sunday 25 October 2026: 08:00 is 07:00 UTC the next day
    assert due_week(datetime(2026, 10, 26, 6, 59, tzinfo=UTC), MONDAY_EIGHT, ROME) is None
    assert due_week(datetime(2026, 10, 26, 7, 0, tzinfo=UTC), MONDAY_EIGHT, ROME) == date(
        2026, 10, 19
    )
    # a week earlier, in summer time, 08:00 was 06:00 UTC
    assert due_week(datetime(2026, 10, 19, 6, 0, tzinfo=UTC), MONDAY_EIGHT, ROME) == date(
        2026, 10, 12
    )


def test_four_full_local_weeks_end_with_the_reported_one() -> None:
    period = shown_period(date(2026, 10, 26), ROME)
    assert period.start == datetime(2026, 10, 5, tzinfo=ROME)
    assert period.end == datetime(2026, 11, 2, tzinfo=ROME)
    # 28 days and the hour summer time gave back
    assert (period.end - period.start).total_seconds() == 28 * 86400 + 3600
