"""The report's pure parts: local weeks and days across a clock change, the business clock
against business_hours' own arithmetic, percentiles, rounding and the short durations."""

from __future__ import annotations

import bisect
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbridge.core.business_hours import BusinessCalendar, business_time_between
from mailbridge.core.report import (
    Counted,
    OpenStretch,
    Period,
    add_up,
    backlog_at_ends,
    buckets,
    business_clock,
    percent,
    percentile,
    period_of_dates,
    seconds,
    short_duration,
)

pytestmark = pytest.mark.unit

ROME = ZoneInfo("Europe/Rome")
OFFICE = BusinessCalendar.parse(
    "Europe/Rome",
    {day: ["09:00-13:00", "14:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
    [date(2026, 12, 8), date(2026, 12, 25)],
)


def test_weeks_start_on_local_mondays_across_the_clock_change() -> None:
    # Sunday 25 October 2026 the clocks go back: that week is 169 hours long
    period = period_of_dates(date(2026, 10, 21), date(2026, 11, 3), ROME)
    weeks = buckets(period, "week", ROME)
    assert [w.key for w in weeks] == ["2026-10-19", "2026-10-26", "2026-11-02"]
    assert weeks[0].start == period.start  # clipped to the period: Wednesday
    assert weeks[1].start - weeks[0].end == timedelta(0)
    assert weeks[1].start == datetime(2026, 10, 25, 23, 0, tzinfo=UTC)  # Monday 00:00 CET
    assert weeks[-1].end == period.end == datetime(2026, 11, 3, 23, 0, tzinfo=UTC)
    days = buckets(period, "day", ROME)
    assert len(days) == 14 and days[4].key == "2026-10-25"
    assert days[4].end - days[4].start == timedelta(hours=25)


def test_the_groupings_not_about_time_have_one_bucket() -> None:
    period = Period(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    (only,) = buckets(period, "queue", ROME)
    assert (only.key, only.start, only.end) == ("", period.start, period.end)
    with pytest.raises(ValueError):
        Period(period.end, period.start)


def business_at(stretches: list[OpenStretch], moment: datetime) -> float:
    """What the SQL does with the clock table: the last stretch opened by `moment`."""
    at = moment.timestamp()
    n = bisect.bisect_right([s.opens for s in stretches], at) - 1
    if n < 0:
        return 0.0
    return stretches[n].before + min(at, stretches[n].closes) - stretches[n].opens


MOMENTS = st.datetimes(
    min_value=datetime(2026, 11, 20), max_value=datetime(2027, 1, 10), timezones=st.just(UTC)
)


@given(MOMENTS, MOMENTS)
def test_the_clock_table_gives_business_hours_own_answer(a: datetime, b: datetime) -> None:
    start, end = min(a, b), max(a, b)
    stretches = business_clock(OFFICE, datetime(2026, 11, 20, tzinfo=UTC), end)
    found = business_at(stretches, end) - business_at(stretches, start)
    assert found == pytest.approx(business_time_between(start, end, OFFICE).total_seconds())


def test_percentiles_interpolate_as_percentile_cont() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([5, 10, 20, 30, 60, 90], 0.99) == pytest.approx(88.5)
    assert percentile([1800, 7200, 7200, 7200, 10800], 0.9) == pytest.approx(9360)


def test_rounding_and_percentages() -> None:
    assert [seconds(v) for v in (None, 0.4999, 88.5, 88.49999999999, 2.5)] == [None, 0, 89, 89, 3]
    assert (percent(1, 3), percent(2, 3), percent(0, 0), percent(5, 5)) == (33.3, 66.7, None, 100.0)


@pytest.mark.parametrize(
    "total,shown",
    [(0, "0s"), (45, "45s"), (61, "1m 1s"), (3600, "1h"), (12000, "3h 20m"), (86401, "1d"),
     (200000, "2d 7h"), (-5, "0s")],
)  # fmt: skip
def test_short_durations(total: int, shown: str) -> None:
    assert short_duration(total) == shown


# --- the backlog from spans ---------------------------------------------------------------

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
spans = st.lists(
    st.tuples(
        st.integers(0, 6),  # first bucket
        st.integers(-1, 6),  # last bucket (before the first: resolved where it came in)
        st.integers(1, 5),  # tickets
        st.integers(0, 50),  # the oldest one's creation, in days
    ),
    max_size=30,
)


@given(spans)
def test_the_backlog_from_spans_is_each_buckets_count_and_oldest(
    drawn: list[tuple[int, int, int, int]],
) -> None:
    found = backlog_at_ends([(a, b, n, EPOCH + timedelta(days=d)) for a, b, n, d in drawn], last=6)
    for position, (waiting, oldest) in enumerate(found):
        covering = [(n, d) for a, b, n, d in drawn if a <= position <= b]
        assert waiting == sum(n for n, _ in covering)
        first = min((d for _, d in covering), default=None)
        assert oldest == (None if first is None else EPOCH + timedelta(days=first))


def test_a_span_that_ends_before_it_starts_counts_nowhere() -> None:
    assert backlog_at_ends([(2, 1, 7, EPOCH)], last=3) == [(0, None)] * 4
    assert backlog_at_ends([], last=0) == [(0, None)]


def test_sums_add_up_column_by_column() -> None:
    one, two = Counted(*range(12)), Counted(*range(100, 112))
    assert add_up([one, two]) == Counted(*range(100, 124, 2))
    assert add_up([]) == Counted(*[0] * 12)
