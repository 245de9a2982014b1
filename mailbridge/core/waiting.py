"""Waiting on the customer: when the reminder goes and when the ticket closes itself, and
whether a staff answer asks the customer something. Pure functions of plain values.

A waiting cycle starts when a staff answer (or `#pending`) leaves the ticket waiting on the
customer. The reminder falls `remind_after` after the cycle's start; the automatic close
falls `close_after` after the reminder was sent (or after the start, when reminders are
off). On a policy that counts business hours, whole days count as business days (a
Friday 16:00 start plus "3d" is Wednesday 16:00) and the rest as business time, so a
customer is never reminded over a weekend. The steps are `core.sla.DueStep`s, so the
escalation sweep fires them like its own levels, once each: the deadline name carries the
cycle's start, a new cycle is a new name (docs/architecture.md, "Waiting on the customer").
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from mailbridge.core.business_hours import (
    MAX_CLOSED_DAYS,
    BusinessCalendar,
    add_business_time,
    next_open,
)
from mailbridge.core.sla import DueStep, Step

REMINDER, CLOSE = 1, 2  # the escalation levels of a waiting cycle
DEADLINE_PREFIX = "waiting:"
# A `#pending 9999w` is read as this: the business-day walk stays short, and nobody means
# to wait longer than a year for a customer.
MAX_WAIT = timedelta(days=366)


def cycle_deadline(start: datetime) -> str:
    """The escalation deadline name of the cycle that started at `start`: "waiting:" and
    the start in whole UTC seconds (fits escalation.deadline's 32 characters)."""
    return f"{DEADLINE_PREFIX}{int(start.astimezone(UTC).timestamp())}"


def is_waiting_deadline(deadline: str) -> bool:
    return deadline.startswith(DEADLINE_PREFIX)


def wait_until(start: datetime, duration: timedelta, cal: BusinessCalendar | None) -> datetime:
    """`duration` after `start`: calendar time, or business days and business time on
    `cal` (see the module docstring). At most MAX_WAIT is counted."""
    duration = min(duration, MAX_WAIT)
    if cal is None:
        return start + duration
    begin = next_open(start, cal)
    days, rest = duration.days, duration - timedelta(days=duration.days)
    local = begin.astimezone(cal.zone)
    day, closed_run = local.date(), 0
    while days:
        day += timedelta(days=1)
        if cal.open_intervals(day):
            days, closed_run = days - 1, 0
        else:
            closed_run += 1
            if closed_run > MAX_CLOSED_DAYS:
                raise ValueError("calendar has no open day to count: check business hours")
    moment = datetime.combine(day, local.time(), tzinfo=cal.zone)
    return add_business_time(moment, rest, cal)


def waiting_steps(
    start: datetime | None,
    remind_after: timedelta | None,
    close_after: timedelta | None,
    reminded_at: datetime | None,
    fired: Collection[tuple[str, int]],
    cal: BusinessCalendar | None,
) -> list[DueStep]:
    """The reminder and close still to fire in the cycle that began at `start` (None: the
    ticket is not waiting); a None or zero duration turns that step off. The close is only
    scheduled once the reminder went (or when reminders are off)."""
    if start is None:
        return []
    deadline = cycle_deadline(start)
    found: list[DueStep] = []
    remind = bool(remind_after)
    if remind and remind_after and (deadline, REMINDER) not in fired:
        at = wait_until(start, remind_after, cal)
        found.append(DueStep(Step(deadline, REMINDER, timedelta(0)), at, at))
    close_from = reminded_at if remind else start
    if close_after and close_from is not None and (deadline, CLOSE) not in fired:
        at = wait_until(close_from, close_after, cal)
        found.append(DueStep(Step(deadline, CLOSE, timedelta(0)), at, at))
    return found


def planned(
    start: datetime | None,
    remind_after: timedelta | None,
    close_after: timedelta | None,
    reminded_at: datetime | None,
    cal: BusinessCalendar | None,
) -> tuple[datetime | None, datetime | None]:
    """(reminder, close) as planned now, for display: a reminder not yet sent is assumed
    to go on time. None for a step that is off or when the ticket is not waiting."""
    if start is None:
        return None, None
    remind = wait_until(start, remind_after, cal) if remind_after else None
    sent = reminded_at or remind
    close_from = sent if remind_after else start
    close = wait_until(close_from, close_after, cal) if close_after and close_from else None
    return (None if reminded_at else remind), close


def ends_with_question(text: str) -> bool:
    """Does the answer's last non-empty line end with a question mark (also the full-width
    and the Arabic ones)? Only the last 4,000 characters are looked at."""
    for line in reversed(text[-4000:].splitlines()):
        stripped = line.strip()
        if stripped:
            return stripped.endswith(("?", "\uff1f", "\u061f"))
    return False
