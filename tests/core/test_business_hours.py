"""Business-hours deadline arithmetic: tables of plain values in Europe/Rome, then properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mailbridge.core.business_hours import (
    MAX_CLOSED_DAYS,
    BusinessCalendar,
    add_business_time,
    business_time_between,
    next_open,
    subtract_business_time,
)

pytestmark = pytest.mark.unit

ROME = ZoneInfo("Europe/Rome")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
ITALY_2026 = frozenset({
    date(2026, 1, 1), date(2026, 1, 6), date(2026, 4, 5), date(2026, 4, 6), date(2026, 4, 25),
    date(2026, 5, 1), date(2026, 6, 2), date(2026, 8, 15), date(2026, 10, 4), date(2026, 11, 1),
    date(2026, 12, 8), date(2026, 12, 25), date(2026, 12, 26),
})  # fmt: skip
CLOSED = ITALY_2026 | {date(2027, 1, 1), date(2027, 1, 6)}
OFFICE = BusinessCalendar.parse(
    "Europe/Rome", {day: ["09:00-13:00", "14:00-18:00"] for day in WEEKDAYS}, CLOSED
)
ALWAYS = BusinessCalendar.parse(
    "Europe/Rome", {day: ["00:00-24:00"] for day in (*WEEKDAYS, "sat", "sun")}
)
H = timedelta(hours=1)


def at(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None
    return moment


# --- add_business_time on an Italian office calendar ----------------------------------------

OFFICE_CASES = [
    # within one morning, across lunch, ending exactly at closing or at the lunch break
    ("2026-03-02T10:00+01:00", 2 * H, "2026-03-02T12:00+01:00"),
    ("2026-03-02T12:00+01:00", 2 * H, "2026-03-02T15:00+01:00"),
    ("2026-03-02T16:00+01:00", 2 * H, "2026-03-02T18:00+01:00"),
    ("2026-03-02T09:00+01:00", 4 * H, "2026-03-02T13:00+01:00"),
    ("2026-03-02T09:00+01:00", 8 * H, "2026-03-02T18:00+01:00"),
    # arriving outside business hours: the clock starts at the next opening
    ("2026-03-02T07:00+01:00", timedelta(minutes=30), "2026-03-02T09:30+01:00"),
    ("2026-03-02T13:30+01:00", 1 * H, "2026-03-02T15:00+01:00"),
    ("2026-03-02T19:30+01:00", 1 * H, "2026-03-03T10:00+01:00"),
    ("2026-03-02T23:59+01:00", 1 * H, "2026-03-03T10:00+01:00"),
    ("2026-03-02T18:00+01:00", 1 * H, "2026-03-03T10:00+01:00"),
    # weekends
    ("2026-03-06T17:00+01:00", 2 * H, "2026-03-09T10:00+01:00"),
    ("2026-03-07T11:00+01:00", 8 * H, "2026-03-09T18:00+01:00"),
    ("2026-03-08T23:00+01:00", 9 * H, "2026-03-10T10:00+01:00"),
    # to the second
    ("2026-03-02T17:59:59+01:00", timedelta(seconds=2), "2026-03-03T09:00:01+01:00"),
    # start given in UTC or another zone (08:00 UTC is 09:00 in Rome in winter)
    ("2026-03-02T08:00+00:00", 1 * H, "2026-03-02T10:00+01:00"),
    ("2026-03-02T03:00-05:00", 1 * H, "2026-03-02T10:00+01:00"),
    # clocks go forward on Sunday 29 March, back on Sunday 25 October
    ("2026-03-27T17:00+01:00", 2 * H, "2026-03-30T10:00+02:00"),
    ("2026-03-27T17:00+01:00", 2 * H, "2026-03-30T08:00+00:00"),
    ("2026-03-28T12:00+01:00", 1 * H, "2026-03-30T10:00+02:00"),
    ("2026-10-23T17:00+02:00", 2 * H, "2026-10-26T10:00+01:00"),
    ("2026-10-23T17:00+02:00", 2 * H, "2026-10-26T09:00+00:00"),
    ("2026-10-25T02:30+02:00", 1 * H, "2026-10-26T10:00+01:00"),
    ("2026-10-25T02:30+01:00", 1 * H, "2026-10-26T10:00+01:00"),
    # holidays: Easter Monday, Christmas and St Stephen, New Year, Labour Day, Republic Day
    ("2026-04-03T17:00+02:00", 2 * H, "2026-04-07T10:00+02:00"),
    ("2026-04-06T10:00+02:00", 1 * H, "2026-04-07T10:00+02:00"),
    ("2026-12-24T17:00+01:00", 2 * H, "2026-12-28T10:00+01:00"),
    ("2026-12-31T18:00+01:00", 1 * H, "2027-01-04T10:00+01:00"),
    ("2026-04-30T17:30+02:00", 1 * H, "2026-05-04T09:30+02:00"),
    ("2026-06-01T18:00+02:00", 1 * H, "2026-06-03T10:00+02:00"),
    ("2026-01-05T17:00+01:00", 2 * H, "2026-01-07T10:00+01:00"),
    # targets longer than a week: 40 business hours a week
    ("2026-03-02T09:00+01:00", 40 * H, "2026-03-06T18:00+01:00"),
    ("2026-03-02T09:00+01:00", 50 * H, "2026-03-10T11:00+01:00"),
    ("2026-03-23T09:00+01:00", 80 * H, "2026-04-03T18:00+02:00"),
    ("2026-03-30T09:00+02:00", 120 * H, "2026-04-20T18:00+02:00"),
    ("2026-10-19T09:00+02:00", 48 * H, "2026-10-26T18:00+01:00"),
    ("2026-12-21T09:00+01:00", 88 * H, "2027-01-07T18:00+01:00"),
    # zero: the instant the clock starts
    ("2026-03-02T10:00+01:00", timedelta(0), "2026-03-02T10:00+01:00"),
    ("2026-03-02T09:00+01:00", timedelta(0), "2026-03-02T09:00+01:00"),
    ("2026-03-02T13:00+01:00", timedelta(0), "2026-03-02T14:00+01:00"),
    ("2026-03-02T18:00+01:00", timedelta(0), "2026-03-03T09:00+01:00"),
    ("2026-12-24T19:00+01:00", timedelta(0), "2026-12-28T09:00+01:00"),
]


@pytest.mark.parametrize(("start", "duration", "expected"), OFFICE_CASES)
def test_add_business_time_office(start: str, duration: timedelta, expected: str) -> None:
    result = add_business_time(at(start), duration, OFFICE)
    assert result == at(expected)
    assert result.tzinfo is UTC


@pytest.mark.parametrize(("start", "duration", "expected"), OFFICE_CASES)
def test_business_time_between_inverts_the_table(
    start: str, duration: timedelta, expected: str
) -> None:
    assert business_time_between(at(start), at(expected), OFFICE) == duration


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2026-03-02T09:00+01:00", "2026-03-02T09:00+01:00", timedelta(0)),
        ("2026-03-02T12:00+01:00", "2026-03-02T14:00+01:00", 1 * H),
        ("2026-03-02T00:00+01:00", "2026-03-03T00:00+01:00", 8 * H),
        ("2026-03-07T00:00+01:00", "2026-03-09T00:00+01:00", timedelta(0)),
        ("2026-03-02T00:00+01:00", "2026-03-09T00:00+01:00", 40 * H),
        ("2026-03-30T00:00+02:00", "2026-04-13T00:00+02:00", 72 * H),
        ("2026-01-01T00:00+01:00", "2027-01-01T00:00+01:00", (261 - 7) * 8 * H),
        ("2026-03-02T13:10+01:00", "2026-03-02T13:50+01:00", timedelta(0)),
    ],
)
def test_business_time_between_office(start: str, end: str, expected: timedelta) -> None:
    assert business_time_between(at(start), at(end), OFFICE) == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-03-02T10:00+01:00", "2026-03-02T10:00+01:00"),
        ("2026-03-02T09:00+01:00", "2026-03-02T09:00+01:00"),
        ("2026-03-02T08:59:59.999999+01:00", "2026-03-02T09:00+01:00"),
        ("2026-03-02T17:59:59.999999+01:00", "2026-03-02T17:59:59.999999+01:00"),
        ("2026-03-02T13:00+01:00", "2026-03-02T14:00+01:00"),
        ("2026-03-02T18:00+01:00", "2026-03-03T09:00+01:00"),
        ("2026-03-28T10:00+01:00", "2026-03-30T09:00+02:00"),
        ("2026-04-05T10:00+02:00", "2026-04-07T09:00+02:00"),
    ],
)
def test_next_open(moment: str, expected: str) -> None:
    assert next_open(at(moment), OFFICE) == at(expected)


# --- daylight saving time -------------------------------------------------------------------


def test_a_business_day_keeps_its_length_and_moves_in_utc() -> None:
    before = OFFICE.open_intervals(date(2026, 3, 27))
    after = OFFICE.open_intervals(date(2026, 3, 30))
    assert before[0] == (at("2026-03-27T08:00+00:00"), at("2026-03-27T12:00+00:00"))
    assert after[0] == (at("2026-03-30T07:00+00:00"), at("2026-03-30T11:00+00:00"))
    autumn = OFFICE.open_intervals(date(2026, 10, 26))
    assert autumn[1] == (at("2026-10-26T13:00+00:00"), at("2026-10-26T17:00+00:00"))
    for day in (date(2026, 3, 27), date(2026, 3, 30), date(2026, 10, 23), date(2026, 10, 26)):
        assert sum((b - a for a, b in OFFICE.open_intervals(day)), timedelta(0)) == 8 * H


NIGHT = BusinessCalendar.parse("Europe/Rome", {"sun": ["01:00-04:00"]})


@pytest.mark.parametrize(
    ("day", "opens", "closes", "length"),
    [
        (date(2026, 3, 22), "2026-03-22T01:00+01:00", "2026-03-22T04:00+01:00", 3 * H),
        (date(2026, 3, 29), "2026-03-29T01:00+01:00", "2026-03-29T04:00+02:00", 2 * H),
        (date(2026, 10, 25), "2026-10-25T01:00+02:00", "2026-10-25T04:00+01:00", 4 * H),
    ],
)
def test_interval_across_the_clock_change_lasts_as_long_as_the_wall_clock_says(
    day: date, opens: str, closes: str, length: timedelta
) -> None:
    assert NIGHT.open_intervals(day) == [(at(opens), at(closes))]
    assert business_time_between(at(opens) - H, at(closes) + H, NIGHT) == length
    assert add_business_time(at(opens) - H, length, NIGHT) == at(closes)


def test_arithmetic_inside_the_changing_night() -> None:
    assert add_business_time(at("2026-03-29T01:30+01:00"), H, NIGHT) == at("2026-03-29T03:30+02:00")
    assert add_business_time(at("2026-10-25T02:30+02:00"), H, NIGHT) == at("2026-10-25T02:30+01:00")
    assert (
        business_time_between(at("2026-10-25T02:00+02:00"), at("2026-10-25T02:00+01:00"), NIGHT)
        == H
    )


@pytest.mark.parametrize(
    ("day", "opens", "closes"),
    [
        # 02:30 does not exist on 29 March: the interval opens when the clocks jump to 03:00
        (date(2026, 3, 29), "2026-03-29T03:00+02:00", "2026-03-29T05:00+02:00"),
        # 02:30 happens twice on 25 October: the interval opens at the first one
        (date(2026, 10, 25), "2026-10-25T02:30+02:00", "2026-10-25T05:00+01:00"),
    ],
)
def test_boundary_in_the_changing_hour(day: date, opens: str, closes: str) -> None:
    cal = BusinessCalendar.parse("Europe/Rome", {"sun": ["02:30-05:00"]})
    assert cal.open_intervals(day) == [(at(opens), at(closes))]


def test_interval_wholly_inside_the_skipped_hour_never_opens() -> None:
    cal = BusinessCalendar.parse("Europe/Rome", {"sun": ["02:10-02:50", "10:00-11:00"]})
    assert cal.open_intervals(date(2026, 3, 29)) == [
        (at("2026-03-29T10:00+02:00"), at("2026-03-29T11:00+02:00"))
    ]
    assert next_open(at("2026-03-29T01:59+01:00"), cal) == at("2026-03-29T10:00+02:00")


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        ("2026-03-28T12:00+01:00", 24 * H, "2026-03-29T13:00+02:00"),
        ("2026-10-24T12:00+02:00", 24 * H, "2026-10-25T11:00+01:00"),
        ("2026-03-29T01:59+01:00", timedelta(minutes=2), "2026-03-29T03:01+02:00"),
    ],
)
def test_always_open_counts_elapsed_time(start: str, duration: timedelta, expected: str) -> None:
    assert add_business_time(at(start), duration, ALWAYS) == at(expected)
    assert business_time_between(at(start), at(expected), ALWAYS) == duration


# --- end of day, midnight, touching intervals -----------------------------------------------


def test_24_00_and_00_00_both_mean_end_of_day() -> None:
    late = BusinessCalendar.parse("Europe/Rome", {"mon": ["20:00-24:00"]})
    also = BusinessCalendar.parse("Europe/Rome", {"mon": ["20:00-00:00"]})
    assert late == also
    assert late.hours[0] == ((time(20), time(0)),)
    assert late.open_intervals(date(2026, 3, 2)) == [
        (at("2026-03-02T20:00+01:00"), at("2026-03-03T00:00+01:00"))
    ]
    assert add_business_time(at("2026-03-02T21:00+01:00"), 3 * H, late) == at(
        "2026-03-03T00:00+01:00"
    )
    assert add_business_time(at("2026-03-02T21:00+01:00"), 4 * H, late) == at(
        "2026-03-09T21:00+01:00"
    )


def test_intervals_touching_across_midnight_are_one_stretch() -> None:
    cal = BusinessCalendar.parse("Europe/Rome", {"mon": ["22:00-24:00"], "tue": ["00:00-06:00"]})
    assert add_business_time(at("2026-03-02T23:00+01:00"), 2 * H, cal) == at(
        "2026-03-03T01:00+01:00"
    )
    assert next_open(at("2026-03-03T00:00+01:00"), cal) == at("2026-03-03T00:00+01:00")


def test_intervals_touching_within_a_day() -> None:
    cal = BusinessCalendar.parse("Europe/Rome", {"mon": ["13:00-18:00", "09:00-13:00"]})
    assert cal.hours[0] == ((time(9), time(13)), (time(13), time(18)))
    assert next_open(at("2026-03-02T13:00+01:00"), cal) == at("2026-03-02T13:00+01:00")
    assert add_business_time(at("2026-03-02T09:00+01:00"), 9 * H, cal) == at(
        "2026-03-02T18:00+01:00"
    )


def test_closed_date_closes_the_local_day_only() -> None:
    cal = BusinessCalendar.parse("Europe/Rome", {"mon": ["00:00-24:00"]}, [date(2026, 3, 9)])
    assert cal.open_intervals(date(2026, 3, 9)) == []
    assert add_business_time(at("2026-03-02T23:00+01:00"), 2 * H, cal) == at(
        "2026-03-16T01:00+01:00"
    )


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "hours", "message"),
    [
        ("Europe/Rome", {"mon": ["09:00-13:00", "12:00-18:00"]}, "overlaps"),
        ("Europe/Rome", {"mon": ["09:00-18:00", "09:00-10:00"]}, "overlaps"),
        ("Europe/Rome", {"mon": ["20:00-24:00", "21:00-22:00"]}, "overlaps"),
        ("Europe/Rome", {"mon": ["18:00-09:00"]}, "ends before it starts"),
        ("Europe/Rome", {"mon": ["09:00-09:00"]}, "ends before it starts"),
        ("Europe/Rome", {"mon": ["9-18"]}, "not an interval"),
        ("Europe/Rome", {"mon": ["09:00"]}, "not an interval"),
        ("Europe/Rome", {"mon": ["09:00-25:00"]}, "not a valid time"),
        ("Europe/Rome", {"mon": ["09:60-10:00"]}, "not a valid time"),
        ("Europe/Rome", {"mon": ["24:00-24:00"]}, "not a valid time"),
        ("Europe/Rome", {"lun": ["09:00-18:00"]}, "unknown day 'lun'"),
        ("Europe/Rome", {"mon": ["09:00-12:00"], "Monday": ["13:00-14:00"]}, "given twice"),
        ("Europe/Rome", {"mon": "09:00-18:00"}, "must be a list"),
        ("Europe/Roma", {"mon": ["09:00-18:00"]}, "unknown time zone"),
        ("", {"mon": ["09:00-18:00"]}, "unknown time zone"),
        ("Europe/Rome", {}, "no business hours"),
        ("Europe/Rome", {"mon": [], "sat": []}, "no business hours"),
    ],
)
def test_parse_rejects(zone: str, hours: dict[str, list[str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BusinessCalendar.parse(zone, hours, [])


def test_parse_accepts_day_names_and_spaces() -> None:
    cal = BusinessCalendar.parse(
        "Europe/Rome", {"Monday": [" 09:00 - 13:00 "], "SUN": ["8:30-9:45"]}, [date(2026, 1, 1)]
    )
    assert cal.hours == {0: ((time(9), time(13)),), 6: ((time(8, 30), time(9, 45)),)}
    assert cal.closed == frozenset({date(2026, 1, 1)})
    assert cal.zone == ROME


@pytest.mark.parametrize("weekday", [-1, 7])
def test_constructor_rejects_bad_weekday(weekday: int) -> None:
    with pytest.raises(ValueError, match="weekday must be 0"):
        BusinessCalendar(ROME, {weekday: ((time(9), time(10)),)})


def test_constructor_rejects_zoned_times() -> None:
    with pytest.raises(ValueError, match="wall-clock"):
        BusinessCalendar(ROME, {0: ((time(9, tzinfo=UTC), time(10)),)})


def test_naive_datetimes_and_negative_durations_are_errors() -> None:
    with pytest.raises(ValueError, match="aware"):
        add_business_time(datetime(2026, 3, 2, 10), H, OFFICE)
    with pytest.raises(ValueError, match="aware"):
        business_time_between(at("2026-03-02T10:00+01:00"), datetime(2026, 3, 3), OFFICE)
    with pytest.raises(ValueError, match="negative"):
        add_business_time(at("2026-03-02T10:00+01:00"), -H, OFFICE)
    with pytest.raises(ValueError, match="before start"):
        business_time_between(at("2026-03-03T10:00+01:00"), at("2026-03-02T10:00+01:00"), OFFICE)


def _closed_every_day(first: date, days: int) -> frozenset[date]:
    return frozenset(first + timedelta(days=n) for n in range(days))


def test_calendar_closed_for_years_raises_instead_of_looping() -> None:
    cal = BusinessCalendar.parse(
        "Europe/Rome", {"mon": ["09:00-18:00"]}, _closed_every_day(date(2026, 1, 1), 4 * 366)
    )
    with pytest.raises(ValueError, match="not open at any time"):
        add_business_time(at("2026-03-02T10:00+01:00"), H, cal)
    with pytest.raises(ValueError, match="not open at any time"):
        next_open(at("2026-03-02T10:00+01:00"), cal)
    assert business_time_between(
        at("2026-03-02T10:00+01:00"), at("2028-03-02T10:00+01:00"), cal
    ) == timedelta(0)


def test_a_long_closure_within_the_bound_still_answers() -> None:
    closure = _closed_every_day(date(2026, 3, 2), MAX_CLOSED_DAYS - 10)
    cal = BusinessCalendar.parse("Europe/Rome", {day: ["09:00-18:00"] for day in WEEKDAYS}, closure)
    reopening = max(closure) + timedelta(days=1)
    result = next_open(at("2026-03-02T10:00+01:00"), cal)
    assert result.astimezone(ROME).date() >= reopening
    assert result.astimezone(ROME).date() - reopening < timedelta(days=3)
    assert result.astimezone(ROME).time() == time(9)


def test_italian_holidays_table_matches_the_holidays_package() -> None:
    holidays = pytest.importorskip("holidays")
    assert frozenset(holidays.Italy(years=2026)) == ITALY_2026


# --- properties -----------------------------------------------------------------------------

ZONES = ("Europe/Rome", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "UTC")
QUARTERS = st.integers(min_value=0, max_value=96).map(lambda q: q * 15)


def _intervals_from_points(points: list[int]) -> list[str]:
    ordered = sorted(set(points))
    pairs = zip(ordered[::2], ordered[1::2], strict=False)
    return [f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}" for a, b in pairs]


@st.composite
def calendars(
    draw: st.DrawFn, zones: tuple[str, ...] = ZONES, avoid: range = range(0)
) -> BusinessCalendar:
    minutes = QUARTERS.filter(lambda m: m not in avoid)
    hours = {
        day: _intervals_from_points(draw(st.lists(minutes, max_size=6)))
        for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    }
    assume(any(hours.values()))
    closed = draw(st.frozensets(st.dates(date(2026, 1, 1), date(2026, 12, 31)), max_size=40))
    return BusinessCalendar.parse(draw(st.sampled_from(zones)), hours, closed)


def _around(day: date) -> st.SearchStrategy[datetime]:
    base = datetime.combine(day, time(0), tzinfo=UTC)
    return st.integers(-3 * 24 * 60, 3 * 24 * 60).map(lambda m: base + timedelta(minutes=m))


STARTS = st.one_of(
    st.datetimes(datetime(2025, 12, 1), datetime(2026, 12, 31), timezones=st.just(UTC)),
    _around(date(2026, 3, 29)),
    _around(date(2026, 10, 25)),
    _around(date(2026, 3, 8)),  # New York springs forward
    _around(date(2026, 4, 5)),  # Lord Howe and Santiago fall back
    _around(date(2026, 9, 6)),  # Santiago springs forward at midnight
)
DURATIONS = st.integers(0, 400 * 60 * 60).map(lambda s: timedelta(seconds=s))


def _is_open(moment: datetime, cal: BusinessCalendar) -> bool:
    return next_open(moment, cal) == moment


@settings(max_examples=150, deadline=None)
@given(calendars(), STARTS, DURATIONS)
def test_between_inverts_add(cal: BusinessCalendar, start: datetime, duration: timedelta) -> None:
    due = add_business_time(start, duration, cal)
    assert due >= start
    assert business_time_between(start, due, cal) == duration


@settings(max_examples=150, deadline=None)
@given(calendars(), STARTS, DURATIONS, DURATIONS)
def test_add_is_monotonic_in_duration(
    cal: BusinessCalendar, start: datetime, one: timedelta, other: timedelta
) -> None:
    shorter, longer = sorted((one, other))
    assert add_business_time(start, shorter, cal) <= add_business_time(start, longer, cal)


@settings(max_examples=150, deadline=None)
@given(calendars(), STARTS, DURATIONS)
def test_result_is_open_or_at_a_closing_and_never_on_a_closed_date(
    cal: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    due = add_business_time(start, duration, cal)
    tick = timedelta(microseconds=1)
    if duration:
        assert business_time_between(due - tick, due, cal) == tick  # open just before
        last_worked = due - tick
    else:
        assert _is_open(due, cal)
        last_worked = due
    assert last_worked.astimezone(cal.zone).date() not in cal.closed


@settings(max_examples=100, deadline=None)
@given(calendars(), STARTS, DURATIONS, DURATIONS.filter(bool))
def test_add_is_additive(
    cal: BusinessCalendar, start: datetime, first: timedelta, second: timedelta
) -> None:
    step = add_business_time(start, first, cal)
    assert add_business_time(step, second, cal) == add_business_time(start, first + second, cal)


@settings(max_examples=100, deadline=None)
@given(calendars(), STARTS, st.lists(DURATIONS, min_size=2, max_size=2))
def test_between_is_additive_and_bounded_by_elapsed_time(
    cal: BusinessCalendar, start: datetime, gaps: list[timedelta]
) -> None:
    middle = start + gaps[0]
    end = middle + gaps[1]
    whole = business_time_between(start, end, cal)
    assert whole == business_time_between(start, middle, cal) + business_time_between(
        middle, end, cal
    )
    assert timedelta(0) <= whole <= end - start


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(ZONES), STARTS, DURATIONS)
def test_always_open_business_time_is_elapsed_time(
    zone: str, start: datetime, duration: timedelta
) -> None:
    cal = BusinessCalendar.parse(zone, {day: ["00:00-24:00"] for day in (*WEEKDAYS, "sat", "sun")})
    assert add_business_time(start, duration, cal) == start + duration
    assert business_time_between(start, start + duration, cal) == duration


def _open_by_the_wall_clock(moment: datetime, cal: BusinessCalendar) -> bool:
    local = moment.astimezone(cal.zone)
    if local.date() in cal.closed:
        return False
    wall = local.time().replace(tzinfo=None)
    return any(
        start <= wall and (end == time(0) or wall < end)
        for start, end in cal.hours.get(local.weekday(), ())
    )


@settings(max_examples=60, deadline=None)
@given(
    calendars(zones=("Europe/Rome",), avoid=range(121, 180)),
    STARTS.map(lambda d: d.replace(second=0, microsecond=0)),
    st.integers(0, 12 * 60).map(lambda m: timedelta(minutes=m)),
)
def test_agrees_with_minute_by_minute_counting(
    cal: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    """Against a plain reading of the wall clock each minute (boundaries off the changing hour)."""
    moment, counted = start, timedelta(0)
    limit = start + timedelta(days=30)
    if not duration:
        while not _open_by_the_wall_clock(moment, cal):
            assume(moment < limit)
            moment += timedelta(minutes=1)
    while counted < duration:
        assume(moment < limit)
        if _open_by_the_wall_clock(moment, cal):
            counted += timedelta(minutes=1)
        moment += timedelta(minutes=1)
    assert add_business_time(start, duration, cal) == moment


# --- subtract_business_time: the moment a warning before a deadline fires -------------------

SUBTRACT_CASES = [
    # within a morning; back across lunch; back to an opening gives the opening, not the
    # previous closing (the latest moment that still leaves the whole duration)
    ("2026-03-02T12:00+01:00", 2 * H, "2026-03-02T10:00+01:00"),
    ("2026-03-02T15:00+01:00", 2 * H, "2026-03-02T12:00+01:00"),
    ("2026-03-02T10:00+01:00", 1 * H, "2026-03-02T09:00+01:00"),
    # from a closed moment: the business time before it counts back from the last closing
    ("2026-03-02T20:00+01:00", 1 * H, "2026-03-02T17:00+01:00"),
    ("2026-03-02T13:30+01:00", 1 * H, "2026-03-02T12:00+01:00"),
    # back across a weekend, and across Easter Monday and Easter Sunday
    ("2026-03-09T09:30+01:00", 1 * H, "2026-03-06T17:30+01:00"),
    ("2026-04-07T09:30+02:00", 1 * H, "2026-04-03T17:30+02:00"),
    # back across the spring-forward and the fall-back weekends: wall-clock hours
    ("2026-03-30T09:30+02:00", 1 * H, "2026-03-27T17:30+01:00"),
    ("2026-10-26T09:30+01:00", 1 * H, "2026-10-23T17:30+02:00"),
    # more than a week back (Immacolata on Tuesday 8 December is closed)
    ("2026-12-14T18:00+01:00", 80 * H, "2026-11-30T09:00+01:00"),
    ("2026-03-02T10:00+01:00", timedelta(0), "2026-03-02T10:00+01:00"),
]


@pytest.mark.parametrize(("end", "duration", "expected"), SUBTRACT_CASES)
def test_subtract_business_time_office(end: str, duration: timedelta, expected: str) -> None:
    assert subtract_business_time(at(end), duration, OFFICE) == at(expected)
    assert business_time_between(at(expected), at(end), OFFICE) == duration


def test_subtract_refuses_what_add_refuses() -> None:
    with pytest.raises(ValueError, match="negative"):
        subtract_business_time(at("2026-03-02T10:00+01:00"), -H, OFFICE)
    with pytest.raises(ValueError, match="aware"):
        subtract_business_time(datetime(2026, 3, 2, 10), H, OFFICE)
    never = _closed_every_day(date(2023, 1, 1), 2000)
    cal = BusinessCalendar.parse("Europe/Rome", {day: ["09:00-18:00"] for day in WEEKDAYS}, never)
    with pytest.raises(ValueError, match="not open at any time"):
        subtract_business_time(at("2026-03-02T10:00+01:00"), H, cal)


@settings(max_examples=150, deadline=None)
@given(calendars(), STARTS, DURATIONS)
def test_subtract_leaves_exactly_the_duration_and_is_the_latest_such_moment(
    cal: BusinessCalendar, end: datetime, duration: timedelta
) -> None:
    try:
        moment = subtract_business_time(end, duration, cal)
    except ValueError:
        assume(False)  # a calendar closed for years before `end`
        return
    assert moment <= end
    assert business_time_between(moment, end, cal) == duration
    if duration:
        later = moment + timedelta(microseconds=1)
        assert business_time_between(later, end, cal) < duration
