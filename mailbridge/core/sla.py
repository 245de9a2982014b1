"""SLA arithmetic: which policy applies, when each deadline falls, which escalation step is
due and when the next one is. Pure functions of plain values and the time handed in.

A deadline runs on one of two clocks: calendar hours (`cal` is None) or the business hours
of a BusinessCalendar. Escalation steps sit at a signed offset from a deadline on the same
clock: a warning before it (negative offset), escalation levels at or after it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from mailbridge.core.business_hours import (
    BusinessCalendar,
    add_business_time,
    business_time_between,
    subtract_business_time,
)

PRIORITIES = ("low", "normal", "high", "urgent")  # lowest first
DEADLINES = ("first_response", "resolution")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")


def parse_duration(value: object) -> timedelta:
    """'30s', '45m', '8h', '3d', '2w' (or a number of seconds) as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(**{DURATION_UNITS[match.group(2)]: int(match.group(1))})
    raise ValueError("a duration like 30s, 45m, 8h, 3d or 2w")


class PolicyLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def mailboxes(self) -> tuple[str, ...]: ...
    @property
    def priorities(self) -> tuple[str, ...]: ...
    @property
    def queues(self) -> tuple[str, ...]: ...


class LevelLike(Protocol):
    @property
    def at(self) -> timedelta: ...
    @property
    def deadline(self) -> str: ...
    @property
    def notify(self) -> str | None: ...
    @property
    def raise_priority(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Deadlines:
    first_response: datetime
    resolution: datetime


P = TypeVar("P", bound=PolicyLike)


def select_policy(
    policies: Sequence[P],
    mailbox: str,
    priority: str,
    queue: str | None = None,
    mailbox_default: str | None = None,
) -> P:
    """The first policy whose match keys all hold. One without keys matches everything: it
    is the default, and where the walk reaches it the mailbox's own default policy
    (`[[mailbox]] sla`, by name) takes its place, so keyed policies before it still win."""
    for policy in policies:
        if not (policy.mailboxes or policy.priorities or policy.queues):
            named = (p for p in policies if p.name == mailbox_default)
            return next(named, policy)
        if policy.mailboxes and mailbox not in policy.mailboxes:
            continue
        if policy.priorities and priority not in policy.priorities:
            continue
        if policy.queues and (queue or mailbox) not in policy.queues:
            continue
        return policy
    raise LookupError(f"no SLA policy matches mailbox {mailbox!r}, priority {priority!r}")


def calendar_name(queue_calendar: str | None, mailbox_calendar: str | None, default: str) -> str:
    """The calendar a ticket's business hours count in: its queue's, else its mailbox's,
    else the default one. The queue wins because it names the team that does the work."""
    return queue_calendar or mailbox_calendar or default


def raised_priority(current: str, target: str | None) -> str:
    """The higher of `current` and `target`; raising never lowers. Unknown names rank as
    normal."""
    if target is None:
        return current

    def rank(name: str) -> int:
        return PRIORITIES.index(name) if name in PRIORITIES else PRIORITIES.index("normal")

    return target if rank(target) > rank(current) else current


# --- the two clocks -----------------------------------------------------------------------


def add_time(start: datetime, duration: timedelta, cal: BusinessCalendar | None) -> datetime:
    """`duration` after `start`: calendar time, or business time when `cal` is given."""
    return start + duration if cal is None else add_business_time(start, duration, cal)


def shift(moment: datetime, offset: timedelta, cal: BusinessCalendar | None) -> datetime:
    """`moment` moved by a signed `offset` on the chosen clock."""
    if cal is None:
        return moment + offset
    if offset < timedelta(0):
        return subtract_business_time(moment, -offset, cal)
    return add_business_time(moment, offset, cal) if offset else moment


def elapsed(start: datetime, end: datetime, cal: BusinessCalendar | None) -> timedelta:
    """Time from `start` to `end` on the chosen clock (zero when end is not after start)."""
    if end <= start:
        return timedelta(0)
    return end - start if cal is None else business_time_between(start, end, cal)


def compute_deadlines(
    start: datetime,
    first_response: timedelta,
    resolution: timedelta,
    cal: BusinessCalendar | None,
    paused: timedelta = timedelta(0),
) -> Deadlines:
    """Both deadlines of a ticket whose clock started at `start`; the resolution clock does
    not count `paused` (time spent waiting on the customer, on the same clock)."""
    return Deadlines(
        add_time(start, first_response, cal), add_time(start, resolution + paused, cal)
    )


def wall_clock_deadlines(start: datetime, first: timedelta, resolution: timedelta) -> Deadlines:
    return compute_deadlines(start, first, resolution, None)


def overdue_by(due: datetime, now: datetime) -> timedelta:
    """How long past `due` it is at `now` (zero when not yet due), to the whole minute."""
    late = max(now - due, timedelta(0))
    return timedelta(minutes=int(late.total_seconds() // 60))


# --- escalation steps ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One configured warning or escalation level on one deadline.

    Levels at or after the deadline are numbered 1, 2, … in time order; warnings before it
    -1, -2, … counting back from the deadline. (deadline, level) names the step: it is the
    unique key of what fired.
    """

    deadline: str  # first_response | resolution
    level: int
    at: timedelta  # from the deadline, on the policy's clock; negative before it
    notify: str | None = None
    raise_priority: str | None = None

    @property
    def is_warning(self) -> bool:
        return self.level < 0

    @property
    def key(self) -> tuple[str, int]:
        return self.deadline, self.level


def number_steps(levels: Sequence[LevelLike]) -> tuple[Step, ...]:
    """Configured levels as numbered steps, ordered by deadline and then by time."""
    steps: list[Step] = []
    for deadline in DEADLINES:
        mine = [level for level in levels if level.deadline == deadline]
        before = sorted((lv for lv in mine if lv.at < timedelta(0)), key=lambda lv: -lv.at)
        after = sorted((lv for lv in mine if lv.at >= timedelta(0)), key=lambda lv: lv.at)
        numbered = [(-n, lv) for n, lv in enumerate(before, 1)]
        numbered += [(n, lv) for n, lv in enumerate(after, 1)]
        steps += sorted(
            (
                Step(deadline, number, lv.at, lv.notify, lv.raise_priority)
                for number, lv in numbered
            ),
            key=lambda step: step.at,
        )
    return tuple(steps)


@dataclass(frozen=True, slots=True)
class DueStep:
    step: Step
    at: datetime  # when it fires
    deadline_at: datetime  # the deadline it belongs to


def pending_steps(
    steps: Sequence[Step],
    deadlines: Mapping[str, datetime | None],
    fired: Collection[tuple[str, int]],
    now: datetime,
    cal: BusinessCalendar | None,
) -> list[DueStep]:
    """Steps still to fire, earliest first; `deadlines` holds None for a deadline that is
    met, paused or not tracked. A warning whose deadline has already passed is moot (the
    levels at the deadline speak for it) and is left out."""
    found = []
    for order, step in enumerate(steps):
        deadline_at = deadlines.get(step.deadline)
        if deadline_at is None or step.key in fired:
            continue
        if step.is_warning and deadline_at <= now:
            continue
        found.append((shift(deadline_at, step.at, cal), order, step, deadline_at))
    found.sort(key=lambda item: (item[0], item[1]))
    return [DueStep(step, at, deadline_at) for at, _, step, deadline_at in found]


def due_now(pending: Sequence[DueStep], now: datetime) -> list[DueStep]:
    """The steps to fire at `now`, in the order they came due."""
    return [due for due in pending if due.at <= now]


def next_moment(pending: Sequence[DueStep]) -> datetime | None:
    """When the sweep must next look at the ticket (None: nothing left to fire)."""
    return min((due.at for due in pending), default=None)
