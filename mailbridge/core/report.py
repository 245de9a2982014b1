"""The service report's pure parts: the period and its groups, the business clock the SQL
reads business time from, percentiles, and the typed result every output is made from
(the text table, `--json`, `--csv`, and whatever renders it later).

Every figure is about the tickets that came in during a group's time (their `created_at`),
followed up to the moment the report is made; only the backlog is a state: the tickets
still unresolved at the end of the group's time. Spam and merged tickets count nowhere.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, astuple, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from heapq import heappop, heappush
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from mailbridge.core.business_hours import BusinessCalendar

Grouping = Literal["week", "day", "queue", "assignee", "mailbox", "language", "tag"]
GROUPINGS: tuple[Grouping, ...] = get_args(Grouping)
TIME_GROUPINGS = frozenset({"week", "day"})

# Customer-unhappy tickets are those a rule (templates/rules/unhappy-customers.toml) or a
# "not solved" rating tagged so (tickets/rating.py).
UNHAPPY_TAG = "unhappy"


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError("the period must end after it starts")


@dataclass(frozen=True, slots=True)
class Bucket:
    """The time one group covers: a local week or day (clipped to the period), or the
    whole period for the groupings that are not about time."""

    key: str  # the local date the week or day begins on; "" for the whole period
    start: datetime
    end: datetime


def period_since(now: datetime, since: timedelta) -> Period:
    return Period(now - since, now)


def period_of_dates(first: date, last: date, zone: ZoneInfo) -> Period:
    """From the local midnight starting `first` to the one ending `last` (both included)."""
    return Period(_local_midnight(first, zone), _local_midnight(last + timedelta(days=1), zone))


def buckets(period: Period, by: Grouping, zone: ZoneInfo) -> tuple[Bucket, ...]:
    """The groups of a time grouping, in order (local days or Monday-based weeks, so a
    week is the team's week whatever the clocks do); one bucket for the others."""
    if by not in TIME_GROUPINGS:
        return (Bucket("", period.start, period.end),)
    step = timedelta(days=7 if by == "week" else 1)
    day = period.start.astimezone(zone).date()
    if by == "week":
        day -= timedelta(days=day.weekday())
    found = []
    while (start := _local_midnight(day, zone)) < period.end:
        end = _local_midnight(day + step, zone)
        found.append(Bucket(day.isoformat(), max(start, period.start), min(end, period.end)))
        day += step
    return tuple(found)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(UTC)


# --- business time -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenStretch:
    """One opening interval with the business seconds before it since the clock's origin:
    business time at `t` inside or after it is `before + min(t, closes) - opens`."""

    opens: float  # seconds since the epoch
    closes: float
    before: float


def business_clock(cal: BusinessCalendar, start: datetime, end: datetime) -> list[OpenStretch]:
    """The opening intervals from the local day of `start` to that of `end`, each with the
    business time before it: business time between two moments is then a difference of two
    look-ups, which SQL can do for every ticket at once."""
    stretches: list[OpenStretch] = []
    before = 0.0
    day, last = start.astimezone(cal.zone).date(), end.astimezone(cal.zone).date()
    while day <= last:
        for opens, closes in cal.open_intervals(day):
            stretches.append(OpenStretch(opens.timestamp(), closes.timestamp(), before))
            before += (closes - opens).total_seconds()
        day += timedelta(days=1)
    return stretches


# --- percentiles and rounding -----------------------------------------------------------


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """The continuous percentile of sorted values (linear between the two nearest, as
    PostgreSQL's percentile_cont); None for no values."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# Interpolation in floating point lands a hair off a half (88.49999… for 88.5): round
# what is that close to a half as the half it is.
_HAIR = 1e-6


def seconds(value: float | None) -> int | None:
    """Whole seconds, halves rounded up, the same from both databases."""
    return None if value is None else math.floor(value + 0.5 + _HAIR)


def percent(part: int, whole: int) -> float | None:
    """0-100 with one decimal; None when there is nothing to divide."""
    return None if whole == 0 else round(100.0 * part / whole, 1)


@dataclass(frozen=True, slots=True)
class Counted:
    """The sums of one group's facts, as the database counted them."""

    tickets_in: int
    acknowledged: int
    first_met: int
    first_decided: int
    resolution_met: int
    resolution_decided: int
    reopened: int
    escalations: int
    unhappy: int
    ratings: int
    good: int
    faq_solved: int


def add_up(counts: Iterable[Counted]) -> Counted:
    """The sums of several groups together (right when no ticket is in two of them)."""
    totals = [sum(column) for column in zip(*(astuple(c) for c in counts), strict=True)]
    return Counted(*totals) if totals else NOTHING


# --- the backlog ------------------------------------------------------------------------

# Per group: the tickets unresolved at the end of its time, and the oldest one's creation.
Waiting = dict[object, tuple[int, datetime | None]]
# Tickets alike for the backlog: unresolved at the end of each bucket from `first` to
# `last`, how many they are, and the oldest one's creation.
Span = tuple[int, int, int, datetime]


def backlog_at_ends(spans: Iterable[Span], last: int) -> list[tuple[int, datetime | None]]:
    """The backlog at the end of each bucket 0..`last` (how many, the oldest's creation)
    from spans within those buckets; a span that ends before it starts (a ticket resolved
    in the bucket it came in) counts nowhere.

    The counts are running sums (in at a span's first bucket, out after its last); the
    oldest comes from a sweep over the buckets keeping the spans begun so far by age,
    dropping those that ended, so it costs the spans' number, not their length."""
    change = [0] * (last + 2)
    starting: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for first, final, count, oldest in spans:
        if first <= final:
            change[first] += count
            change[final + 1] -= count
            starting[first].append((oldest, final))
    found: list[tuple[int, datetime | None]] = []
    waiting = 0
    begun: list[tuple[datetime, int]] = []
    for position in range(last + 1):
        waiting += change[position]
        for item in starting[position]:
            heappush(begun, item)
        while begun and begun[0][1] < position:
            heappop(begun)
        found.append((waiting, begun[0][0] if begun else None))
    return found


# --- the result -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figures:
    """One group's figures. Durations in whole seconds, percentages 0-100 with one decimal,
    None where there is nothing to measure. Field names are the `--json` and `--csv`
    contract: they may be added to, never renamed or removed."""

    tickets_in: int
    acknowledged: int
    ack_p50_seconds: int | None
    ack_p99_seconds: int | None
    first_response_p50_seconds: int | None  # on the policy's clock (business time or not)
    first_response_p90_seconds: int | None
    first_response_sla_met_pct: float | None
    resolution_sla_met_pct: float | None
    resolution_p50_seconds: int | None
    resolution_p90_seconds: int | None
    reopened_pct: float | None
    escalations: int
    backlog: int
    backlog_oldest_age_seconds: int | None
    unhappy: int
    unhappy_first_response_p50_seconds: int | None
    others_first_response_p50_seconds: int | None
    ratings: int
    satisfaction_pct: float | None
    faq_solved: int


FIGURE_FIELDS = tuple(f.name for f in fields(Figures))
NOTHING = Counted(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

# The percentiles the figures take of each series of durations (seconds per ticket).
PERCENTILES: dict[str, tuple[float, ...]] = {
    "ack": (0.5, 0.99),
    "first_response": (0.5, 0.9),
    "resolution": (0.5, 0.9),
    "unhappy_first_response": (0.5,),
    "others_first_response": (0.5,),
}


def figures_of(
    counts: Counted,
    picks: Mapping[str, Mapping[float, float]],
    backlog: tuple[int, datetime | None],
    end: datetime,
) -> Figures:
    """One group's figures from its sums, its percentiles (series -> fraction -> value)
    and its backlog (count, oldest creation) at `end`."""

    def at(series: str, fraction: float) -> int | None:
        return seconds(picks.get(series, {}).get(fraction))

    waiting, oldest = backlog
    return Figures(
        tickets_in=counts.tickets_in,
        acknowledged=counts.acknowledged,
        ack_p50_seconds=at("ack", 0.5),
        ack_p99_seconds=at("ack", 0.99),
        first_response_p50_seconds=at("first_response", 0.5),
        first_response_p90_seconds=at("first_response", 0.9),
        first_response_sla_met_pct=percent(counts.first_met, counts.first_decided),
        resolution_sla_met_pct=percent(counts.resolution_met, counts.resolution_decided),
        resolution_p50_seconds=at("resolution", 0.5),
        resolution_p90_seconds=at("resolution", 0.9),
        reopened_pct=percent(counts.reopened, counts.tickets_in),
        escalations=counts.escalations,
        backlog=waiting,
        backlog_oldest_age_seconds=seconds((end - oldest).total_seconds()) if oldest else None,
        unhappy=counts.unhappy,
        unhappy_first_response_p50_seconds=at("unhappy_first_response", 0.5),
        others_first_response_p50_seconds=at("others_first_response", 0.5),
        ratings=counts.ratings,
        satisfaction_pct=percent(counts.good, counts.ratings),
        faq_solved=counts.faq_solved,
    )


@dataclass(frozen=True, slots=True)
class Group:
    """A group's key (None: tickets without an assignee, a language or any tag) and its
    time for the time groupings."""

    key: str | None
    start: datetime | None
    end: datetime | None
    figures: Figures


@dataclass(frozen=True, slots=True)
class Report:
    period: Period
    by: Grouping
    made_at: datetime
    groups: tuple[Group, ...]
    total: Figures


def report_json(report: Report) -> dict[str, object]:
    """The `--json` shape (README, "mailbridge report")."""
    return {
        "from": report.period.start.isoformat(),
        "to": report.period.end.isoformat(),
        "by": report.by,
        "made_at": report.made_at.isoformat(),
        "groups": [
            {"group": g.key, "from": _iso(g.start), "to": _iso(g.end), **asdict(g.figures)}
            for g in report.groups
        ],
        "total": asdict(report.total),
    }


CSV_FIELDS = ("scope", "group", "from", "to", *FIGURE_FIELDS)


def report_rows(report: Report) -> Iterator[list[str]]:
    """The `--csv` rows after the header: one per group (scope "group"), then the total
    (scope "total", the period's bounds). Empty cells for no data."""
    for g in report.groups:
        yield ["group", g.key or "", _iso(g.start) or "", _iso(g.end) or "", *_cells(g.figures)]
    period = report.period
    yield ["total", "", period.start.isoformat(), period.end.isoformat(), *_cells(report.total)]


def _cells(figures: Figures) -> list[str]:
    return ["" if value is None else str(value) for value in asdict(figures).values()]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


# --- the text table -----------------------------------------------------------------------

# (header, the Figures field) of the text table's columns after the group's.
TABLE_COLUMNS = (
    ("in", "tickets_in"),
    ("acked", "acknowledged"),
    ("ack p50", "ack_p50_seconds"),
    ("ack p99", "ack_p99_seconds"),
    ("1st p50", "first_response_p50_seconds"),
    ("1st p90", "first_response_p90_seconds"),
    ("1st SLA", "first_response_sla_met_pct"),
    ("res SLA", "resolution_sla_met_pct"),
    ("res p50", "resolution_p50_seconds"),
    ("res p90", "resolution_p90_seconds"),
    ("reopen", "reopened_pct"),
    ("esc", "escalations"),
    ("backlog", "backlog"),
    ("oldest", "backlog_oldest_age_seconds"),
    ("unhappy", "unhappy"),
    ("unh 1st", "unhappy_first_response_p50_seconds"),
    ("rest 1st", "others_first_response_p50_seconds"),
    ("rated", "ratings"),
    ("happy", "satisfaction_pct"),
    ("faq", "faq_solved"),
)
NO_GROUP = "(none)"


def table_rows(report: Report, clean: Callable[[str], str]) -> list[list[str]]:
    """The text table's rows: one per group, then the total. `clean` makes a group's name
    one printable line."""
    rows = [[clean(g.key) if g.key else NO_GROUP, *_shown(g.figures)] for g in report.groups]
    return [*rows, ["total", *_shown(report.total)]]


def _shown(figures: Figures) -> list[str]:
    shown = []
    for _, name in TABLE_COLUMNS:
        value = getattr(figures, name)
        if value is None:
            shown.append("-")
        elif name.endswith("_pct"):
            shown.append(f"{value:.1f}%")
        elif name.endswith("_seconds"):
            shown.append(short_duration(value))
        else:
            shown.append(f"{value:,}")
    return shown


def short_duration(total: int) -> str:
    """A duration in its two largest units, in a few characters: 45s, 12m 5s, 3h 20m, 2d 4h."""
    units = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
    total = max(total, 0)
    for n, (name, size) in enumerate(units):
        if total >= size or name == "s":
            shown = f"{total // size}{name}"
            if n + 1 < len(units):
                next_name, next_size = units[n + 1]
                if amount := total % size // next_size:
                    shown += f" {amount}{next_name}"
            return shown
    raise AssertionError("unreachable: seconds always show")
