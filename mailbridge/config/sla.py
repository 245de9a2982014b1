"""Service levels: the [[sla]] policies with their escalation levels and chaser rule, and the
calendars of opening hours and holidays their business-hours deadlines count in: one
[calendar] table, or several named [[calendar]] tables.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import Discriminator, Field, PrivateAttr, Tag, ValidationInfo, field_validator

from mailbridge.config.values import Duration, EmailAddress, Offset, Priority, _Section
from mailbridge.core.business_hours import BusinessCalendar
from mailbridge.core.sla import Step, number_steps


class EscalationLevel(_Section):
    """A warning (before the deadline) or an escalation level (at or after it)."""

    at: Offset = timedelta(0)
    deadline: Literal["first_response", "resolution"] = "first_response"
    # None: staff.team_address for a warning, staff.escalation_address for a level.
    notify: EmailAddress | None = None
    raise_priority: Priority | None = None


class ChaserPolicy(_Section):
    """What a customer writing again to a ticket still waiting for us does."""

    raise_priority: Priority | None = None
    # The pending deadline moves to at most this far from the chaser (same clock as the
    # policy); None leaves it where it is.
    shorten_to: Duration | None = None


# Without levels, a policy escalates once, when the first response is late.
DEFAULT_LEVELS = (EscalationLevel(),)


class SlaPolicy(_Section):
    name: str
    first_response: Duration
    resolution: Duration
    business_hours: bool = False
    mailboxes: tuple[str, ...] = ()  # match keys: empty matches every mailbox
    queues: tuple[str, ...] = ()
    priorities: tuple[Priority, ...] = ()
    levels: tuple[EscalationLevel, ...] = ()
    chaser: ChaserPolicy = ChaserPolicy()

    @field_validator("levels")
    @classmethod
    def _distinct_levels(cls, levels: tuple[EscalationLevel, ...]) -> tuple[EscalationLevel, ...]:
        seen = set()
        for level in levels:
            if (level.deadline, level.at) in seen:
                sign = "-" if level.at < timedelta(0) else "+"
                raise ValueError(
                    f"one level per moment, but two are at {sign}{abs(level.at)} "
                    f"from {level.deadline}"
                )
            seen.add((level.deadline, level.at))
        return levels

    @property
    def is_default(self) -> bool:
        return not self.mailboxes and not self.priorities and not self.queues

    @property
    def steps(self) -> tuple[Step, ...]:
        return _numbered(self.levels or DEFAULT_LEVELS)


@lru_cache(maxsize=64)  # a few policies per configuration; reloads make new ones
def _numbered(levels: tuple[EscalationLevel, ...]) -> tuple[Step, ...]:
    """A policy's steps, numbered once per set of levels: the sweep asks twice per ticket."""
    return number_steps(levels)


WEEKDAY_HOURS: dict[str, tuple[str, ...]] = {
    day: ("09:00-18:00",) for day in ("mon", "tue", "wed", "thu", "fri")
}
HOLIDAY_YEARS_BEFORE, HOLIDAY_YEARS_AFTER = 1, 3  # around the year a deadline starts in


DEFAULT_CALENDAR = "default"


class CalendarConfig(_Section):
    # A [[calendar]] without a name is "default"; mailboxes and queues choose one by name.
    name: str = Field(default=DEFAULT_CALENDAR, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    timezone: str = "UTC"
    # Opening hours per weekday, several intervals a day; days not named are closed.
    hours: dict[str, tuple[str, ...]] = Field(default_factory=lambda: dict(WEEKDAY_HOURS))
    holidays: str | None = None  # country code of the `holidays` package, e.g. "IT"
    subdivision: str | None = None  # e.g. a province ("RM") with its own patron saint day
    closed: tuple[date, ...] = ()  # extra closed dates
    _calendars: dict[int, BusinessCalendar] = PrivateAttr(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"an IANA time zone like Europe/Rome, not {value!r}") from None
        return value

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        try:
            BusinessCalendar.parse("UTC", value)
        except ValueError as exc:
            raise ValueError(
                f'opening hours like mon = ["09:00-13:00", "14:00-18:00"] ({exc})'
            ) from None
        return value

    @field_validator("holidays")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in holidays.list_supported_countries():
            raise ValueError(
                f"a country code of the holidays package, like IT, DE or US, not {value!r}"
            )
        return value.upper() if value else None

    @field_validator("subdivision")
    @classmethod
    def _known_subdivision(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        country = info.data.get("holidays")
        if not country:
            raise ValueError("no subdivision without a holidays country")
        known = holidays.list_supported_countries()[country]
        if value.upper() not in known:
            raise ValueError(
                f"a subdivision of {country} ({', '.join(known[:8])}, …), not {value!r}"
            )
        return value.upper()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def business_calendar(self, year: int) -> BusinessCalendar:
        """Opening hours, closed on public holidays and the extra dates, good for deadlines
        that start in `year` (holidays from the year before to three years after)."""
        calendar = self._calendars.get(year)
        if calendar is None:
            closed = set(self.closed)
            if self.holidays:
                years = range(year - HOLIDAY_YEARS_BEFORE, year + HOLIDAY_YEARS_AFTER + 1)
                closed.update(
                    holidays.country_holidays(self.holidays, subdiv=self.subdivision, years=years)
                )
            calendar = BusinessCalendar.parse(self.timezone, self.hours, closed)
            self._calendars[year] = calendar
        return calendar


def _one_or_many(value: Any) -> str:
    return "[[calendar]]" if isinstance(value, list | tuple) else "[calendar]"


# The file holds one [calendar] table (the default calendar, as before names existed) or an
# array of [[calendar]] tables. The tags show in error locations; the loader leaves them out.
CalendarTables = Annotated[
    Annotated[CalendarConfig, Tag("[calendar]")]
    | Annotated[tuple[CalendarConfig, ...], Field(min_length=1), Tag("[[calendar]]")],
    Discriminator(_one_or_many),
]


def calendar_list(
    tables: CalendarConfig | tuple[CalendarConfig, ...],
) -> tuple[CalendarConfig, ...]:
    return tables if isinstance(tables, tuple) else (tables,)


def default_calendar(calendars: tuple[CalendarConfig, ...]) -> CalendarConfig:
    """The calendar named "default", else the first."""
    return next((c for c in calendars if c.name == DEFAULT_CALENDAR), calendars[0])


def duplicate_calendar(calendars: tuple[CalendarConfig, ...]) -> str | None:
    """A name two calendars share, if any."""
    seen: set[str] = set()
    for calendar in calendars:
        if calendar.name in seen:
            return calendar.name
        seen.add(calendar.name)
    return None
