"""Business-hours deadline arithmetic: weekly opening hours in a time zone, minus closed dates.

Business time is elapsed time while the business is open. Opening hours are wall-clock times
in the calendar's zone; each boundary is the first instant whose local time reaches it, so an
interval that spans a daylight-saving change lasts exactly as long as the clocks on the wall
say it is open (09:00–18:00 is nine hours on every day, 01:00–04:00 is two hours on the day
the clocks go forward and four on the day they go back). A boundary that falls in the
skipped hour opens or closes at the moment the clocks jump.

All functions take aware datetimes in any zone and return aware UTC datetimes. The calendar
is plain data: the caller fills `closed` (public holidays and extra closed dates).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "BusinessCalendar",
    "add_business_time",
    "business_time_between",
    "next_open",
    "subtract_business_time",
]

Interval = tuple[time, time]

# End of the search for an opening: a calendar closed this long is a configuration error, not
# a deadline, and without a bound an all-closed calendar would never answer.
MAX_CLOSED_DAYS = 3 * 366

MIDNIGHT = time(0)  # as an interval end: midnight at the end of the day ("24:00")

_DAY_NAMES = {
    name: number
    for number, names in enumerate(
        (
            ("mon", "monday"),
            ("tue", "tuesday"),
            ("wed", "wednesday"),
            ("thu", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
            ("sun", "sunday"),
        )
    )
    for name in names
}
_INTERVAL = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")


@dataclass(frozen=True)
class BusinessCalendar:
    """Weekly opening hours in `zone` (weekday 0 = Monday), closed on the dates in `closed`.

    Each weekday maps to sorted, non-overlapping [start, end) intervals of local wall time;
    an end of 00:00 means midnight at the end of that day. Intervals may touch, within a day
    and across midnight (Mon 22:00–24:00 and Tue 00:00–06:00 are one stretch of open time).
    A closed date closes all of that local day's intervals.
    """

    zone: ZoneInfo
    hours: Mapping[int, tuple[Interval, ...]] = field(hash=False)
    closed: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        normal: dict[int, tuple[Interval, ...]] = {}
        for day, intervals in self.hours.items():
            if day not in range(7):
                raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), not {day!r}")
            normal[day] = _checked_day(day, intervals)
        if not any(normal.values()):
            raise ValueError("calendar has no business hours on any day of the week")
        object.__setattr__(self, "hours", MappingProxyType(normal))
        object.__setattr__(self, "closed", frozenset(self.closed))

    @classmethod
    def parse(
        cls, zone: str, hours: Mapping[str, Sequence[str]], closed: Iterable[date] = ()
    ) -> BusinessCalendar:
        """Build a calendar from configuration values.

        `hours` maps day names ("mon" or "monday", any case) to intervals such as
        "09:00-13:00"; an end of "24:00" or "00:00" means the end of the day. Days not named
        are closed. Raises ValueError naming the bad value.
        """
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {zone!r}") from exc
        weekly: dict[int, tuple[Interval, ...]] = {}
        for name, texts in hours.items():
            day = _DAY_NAMES.get(name.strip().lower())
            if day is None:
                raise ValueError(f"unknown day {name!r}: use mon, tue, wed, thu, fri, sat, sun")
            if day in weekly:
                raise ValueError(f"day {name!r} is given twice")
            if isinstance(texts, str):
                raise ValueError(f"hours for {name!r} must be a list such as ['09:00-18:00']")
            weekly[day] = tuple(_parse_interval(name, text) for text in texts)
        return cls(tz, weekly, frozenset(closed))

    def open_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The UTC [start, end) intervals during which the business is open on local `day`."""
        if day in self.closed:
            return []
        found = []
        for start, end in self.hours.get(day.weekday(), ()):
            opens = _first_instant_at(self.zone, day, start)
            closes = (
                _first_instant_at(self.zone, day + timedelta(days=1), MIDNIGHT)
                if end == MIDNIGHT
                else _first_instant_at(self.zone, day, end)
            )
            if closes > opens:  # an interval inside the skipped hour never happens
                found.append((opens, closes))
        return found


def add_business_time(start: datetime, duration: timedelta, cal: BusinessCalendar) -> datetime:
    """The instant at which `duration` of business time has passed since `start`.

    The clock starts at `start` if the business is open then, otherwise at the next opening;
    a zero duration gives that starting instant. A positive duration that runs out exactly at
    a closing gives the closing instant, not the next opening.
    """
    if duration < timedelta(0):
        raise ValueError(f"duration must not be negative, got {duration}")
    remaining = duration
    for opens, closes in _intervals_from(_as_utc(start, "start"), cal):
        if remaining <= closes - opens:
            return opens + remaining
        remaining -= closes - opens
    raise AssertionError("unreachable: the interval search ends by raising")


def subtract_business_time(end: datetime, duration: timedelta, cal: BusinessCalendar) -> datetime:
    """The latest instant from which `duration` of business time runs until `end`.

    The mirror of add_business_time: an hour before a deadline at Monday 10:00 in an office
    opening at 09:00 is Monday 09:00, not Friday's closing. A zero duration gives `end`.
    """
    if duration < timedelta(0):
        raise ValueError(f"duration must not be negative, got {duration}")
    end_utc = _as_utc(end, "end")
    if not duration:
        return end_utc
    remaining = duration
    for opens, closes in _intervals_before(end_utc, cal):
        if remaining <= closes - opens:
            return closes - remaining
        remaining -= closes - opens
    raise AssertionError("unreachable: the interval search ends by raising")


def next_open(moment: datetime, cal: BusinessCalendar) -> datetime:
    """`moment` (in UTC) if the business is open then, otherwise the next opening."""
    return add_business_time(moment, timedelta(0), cal)


def business_time_between(start: datetime, end: datetime, cal: BusinessCalendar) -> timedelta:
    """How much business time passes from `start` to `end` (end must not be before start)."""
    start_utc, end_utc = _as_utc(start, "start"), _as_utc(end, "end")
    if end_utc < start_utc:
        raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
    total = timedelta(0)
    day = _local_date(start_utc, cal) - timedelta(days=1)
    last = _local_date(end_utc, cal) + timedelta(days=1)
    while day <= last:
        for opens, closes in cal.open_intervals(day):
            overlap = min(closes, end_utc) - max(opens, start_utc)
            if overlap > timedelta(0):
                total += overlap
        day += timedelta(days=1)
    return total


def _intervals_from(start: datetime, cal: BusinessCalendar) -> Iterator[tuple[datetime, datetime]]:
    """Open intervals from `start` on, the first clipped to begin no earlier than `start`."""
    # A day earlier than start's local date: in zones that turn the clocks back over
    # midnight, the previous date's last interval can still be running.
    day = _local_date(start, cal) - timedelta(days=1)
    closed_days = 0
    while closed_days <= MAX_CLOSED_DAYS:
        found = False
        for opens, closes in cal.open_intervals(day):
            if closes > start:
                found = True
                yield max(opens, start), closes
        closed_days = 0 if found else closed_days + 1
        day += timedelta(days=1)
    raise ValueError(
        f"calendar is not open at any time in the {MAX_CLOSED_DAYS} days after "
        f"{start.isoformat()}: check business hours and closed dates"
    )


def _intervals_before(end: datetime, cal: BusinessCalendar) -> Iterator[tuple[datetime, datetime]]:
    """Open intervals before `end`, latest first, the first clipped to close no later than it."""
    # A day later than end's local date, for the same reason _intervals_from starts a day early.
    day = _local_date(end, cal) + timedelta(days=1)
    closed_days = 0
    while closed_days <= MAX_CLOSED_DAYS:
        found = False
        for opens, closes in reversed(cal.open_intervals(day)):
            if opens < end:
                found = True
                yield opens, min(closes, end)
        closed_days = 0 if found else closed_days + 1
        day -= timedelta(days=1)
    raise ValueError(
        f"calendar is not open at any time in the {MAX_CLOSED_DAYS} days before "
        f"{end.isoformat()}: check business hours and closed dates"
    )


def _first_instant_at(zone: ZoneInfo, day: date, at: time) -> datetime:
    """The first UTC instant whose wall-clock time in `zone` is at least `day` `at`."""
    wall = datetime.combine(day, at)
    earliest = wall.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the first occurrence
    if earliest.astimezone(zone).replace(tzinfo=None) == wall:
        return earliest
    # `wall` falls in a gap: fold=0 maps it past the gap, fold=1 before it. The answer is the
    # moment of the jump, found by bisection in microseconds (a gap is at most hours long).
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = earliest
    while high - low > timedelta(microseconds=1):
        middle = low + (high - low) // 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high


def _checked_day(day: int, intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    ordered = tuple(sorted(intervals, key=lambda interval: interval[0]))
    previous_end: time | None = None
    for start, end in ordered:
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError(f"weekday {day}: interval times must be wall-clock times, no zone")
        if end != MIDNIGHT and end <= start:
            raise ValueError(
                f"weekday {day}: interval {start:%H:%M}-{end:%H:%M} ends before it starts"
            )
        if previous_end is not None and (previous_end == MIDNIGHT or start < previous_end):
            raise ValueError(
                f"weekday {day}: interval starting {start:%H:%M} overlaps the one before"
            )
        previous_end = end
    return ordered


def _parse_interval(day_name: str, text: str) -> Interval:
    match = _INTERVAL.fullmatch(text)
    if match is None:
        raise ValueError(f"{day_name}: {text!r} is not an interval like '09:00-13:00'")
    start_h, start_m, end_h, end_m = (int(group) for group in match.groups())
    if (end_h, end_m) == (24, 0):
        end_h = 0
    if start_h > 23 or end_h > 23 or start_m > 59 or end_m > 59:
        raise ValueError(f"{day_name}: {text!r} is not a valid time of day")
    start, end = time(start_h, start_m), time(end_h, end_m)
    if end != MIDNIGHT and end <= start:
        raise ValueError(f"{day_name}: {text!r} ends before it starts")
    return start, end


def _as_utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def _local_date(moment: datetime, cal: BusinessCalendar) -> date:
    return moment.astimezone(cal.zone).date()
