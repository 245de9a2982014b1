"""When the weekly report by mail falls due and which weeks it shows. Pure.

`[reports] weekly_on = "mon 08:00"` is a moment of each local week (Monday to Sunday, in the
calendar's zone). From that moment on, the report of the week before is due: it shows the
WEEKS_SHOWN full weeks up to the end of that week, the last one set apart. A week the
service was down for entirely is not sent late: only the latest due report ever is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from mailbridge.core.report import Period, period_of_dates

__all__ = ["WEEKDAYS", "WEEKS_SHOWN", "WeeklyMoment", "due_week", "parse_weekly_on", "shown_period"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKS_SHOWN = 4  # a trend, and the last week against it
_MOMENT = re.compile(r"(?P<day>[a-z]{3})\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})")


@dataclass(frozen=True, slots=True)
class WeeklyMoment:
    weekday: int  # Monday 0, as date.weekday()
    at: time  # local time in the calendar's zone


def parse_weekly_on(text: str) -> WeeklyMoment:
    """ "mon 08:00" (a weekday's first three letters, a 24-hour time); ValueError naming
    what was expected otherwise."""
    match = _MOMENT.fullmatch(text.strip().lower())
    hour, minute = (int(match["hour"]), int(match["minute"])) if match else (-1, -1)
    if match is None or match["day"] not in WEEKDAYS or hour > 23 or minute > 59:
        raise ValueError(
            f'a weekday and a 24-hour time like "mon 08:00" (days: {", ".join(WEEKDAYS)}), '
            f"not {text!r}"
        )
    return WeeklyMoment(WEEKDAYS.index(match["day"]), time(hour, minute))


def due_week(now: datetime, moment: WeeklyMoment, zone: ZoneInfo) -> date | None:
    """The Monday of the week whose report is due at `now`: the week before the present
    local week, once this week's moment has come; None before it."""
    local = now.astimezone(zone)
    monday = local.date() - timedelta(days=local.weekday())
    due = datetime.combine(monday + timedelta(days=moment.weekday), moment.at, zone)
    if now < due:
        return None
    return monday - timedelta(weeks=1)


def shown_period(last_week: date, zone: ZoneInfo) -> Period:
    """The WEEKS_SHOWN full local weeks ending with the week of Monday `last_week`."""
    first = last_week - timedelta(weeks=WEEKS_SHOWN - 1)
    return period_of_dates(first, last_week + timedelta(days=6), zone)
