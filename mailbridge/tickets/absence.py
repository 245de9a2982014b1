"""Staff absence: who is away until when (the `staff_state` table), and whom their mail goes
to meanwhile.

A staff member is away while `away_until` is after now: the absence ends by itself at the
return date, with no job to run, or sooner by `set_back` (their first real mail, `#away`'s
opposite, the command line). While they are away, the notifications and escalations that
would go to them go to the team address, saying so (`covering`). Every change is an event
about no ticket (`staff_away`, `staff_back`) with its source and who made it.

Runs inside the caller's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbridge.app import App, Step
from mailbridge.core.humanize import format_day
from mailbridge.db.models import StaffState
from mailbridge.tickets.events import add_general_event

log = logging.getLogger(__name__)

Source = Literal["auto_reply", "mail", "command line"]
DEFAULT_ABSENCE = timedelta(hours=24)  # after an auto-reply that states no return date


def set_away(step: Step, address: str, until: datetime, *, source: Source, by: str) -> bool:
    """Mark `address` away until `until`; False when that is already so (no event)."""
    address = address.lower()
    step.session.info.pop(_KNOWN, None)
    state = step.session.get(StaffState, address)
    if state is None:
        state = StaffState(address=address, updated_at=step.now)
        step.session.add(state)
    active = _active(state, step.now)
    if active and state.away_until == until:
        return False
    if not active:
        state.away_since = step.now
    state.away_until = until
    state.away_source = source
    state.updated_at = step.now
    add_general_event(
        step,
        "staff_away",
        address=address,
        until=until.isoformat(),
        source=source,
        by=by,
        via=_via(source),
    )
    return True


def set_back(step: Step, address: str, *, source: Source, by: str) -> bool:
    """End the absence of `address` now; False when they were not away (no event)."""
    address = address.lower()
    step.session.info.pop(_KNOWN, None)
    state = step.session.get(StaffState, address)
    if state is None or not _active(state, step.now):
        return False
    was_until = state.away_until
    state.away_until = None
    state.away_since = None
    state.away_source = None
    state.updated_at = step.now
    add_general_event(
        step,
        "staff_back",
        address=address,
        was_until=was_until.isoformat() if was_until else None,
        source=source,
        by=by,
        via=_via(source),
    )
    return True


_KNOWN = "mailbridge.staff_away"  # session.info: (the moment, away_map at it)


@contextmanager
def away_known(session: Session, now: datetime) -> Iterator[None]:
    """Read who is away at `now` once (a few rows at most): inside, `away_until` at that
    moment asks nothing. `set_away` and `set_back` forget it."""
    if _KNOWN in session.info:
        yield
        return
    session.info[_KNOWN] = (now, away_map(session, now))
    try:
        yield
    finally:
        session.info.pop(_KNOWN, None)


def away_until(session: Session, address: str, now: datetime) -> datetime | None:
    """Until when `address` is away, or None when they are not."""
    known: tuple[datetime, dict[str, datetime]] | None = session.info.get(_KNOWN)
    if known is not None and known[0] == now:
        return known[1].get(address.lower())
    state = session.get(StaffState, address.lower())
    return state.away_until if state is not None and _active(state, now) else None


def away_map(session: Session, now: datetime) -> dict[str, datetime]:
    """Everyone away now, and until when."""
    query = select(StaffState).where(StaffState.away_until > now)
    return {s.address: s.away_until for s in session.scalars(query) if s.away_until is not None}


def end_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The end of `day` in the calendar's zone (`[calendar] timezone`): whoever says they
    are back on a day is covered through it; their first real mail ends it sooner."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)


@dataclass(frozen=True, slots=True)
class Cover:
    """Where a mail meant for a staff member goes, and the `away_note` context value that
    says why (None: they are not away, or nobody can cover)."""

    target: str
    away_note: dict[str, object] | None = None


def covering(step: Step, target: str, language: str) -> Cover:
    """The team address, with a note, when `target` is an away staff member; else
    `target` (also when there is no team address to cover, which is logged)."""
    team = step.app.config.staff.team_address
    if team and target.lower() == team.lower():
        return Cover(target)
    until = away_until(step.session, target, step.now)
    if until is None:
        return Cover(target)
    if not team:
        log.warning(
            "%s is away until %s, but there is no [staff] team_address to cover; "
            "their mail goes to them",
            target,
            until.isoformat(),
        )
        return Cover(target)
    return Cover(team, away_note(step.app, target, until, language))


def away_note(app: App, address: str, until: datetime, language: str) -> dict[str, object]:
    """{"name": "Alice", "address": …, "until": "12 Jan"}: the last day away, in the
    calendar's zone."""
    last_day = (until - timedelta(microseconds=1)).astimezone(app.config.calendar.zone).date()
    return {
        "name": display_name(address),
        "address": address,
        "until": format_day(last_day, language),
    }


def display_name(address: str) -> str:
    """alice.rossi@shop.example -> "Alice Rossi": staff are known by address only."""
    local = address.partition("@")[0].partition("+")[0]
    words = local.replace("_", ".").replace("-", ".").split(".")
    return " ".join(w.capitalize() for w in words if w) or address


def _active(state: StaffState, now: datetime) -> bool:
    return state.away_until is not None and state.away_until > now


def _via(source: Source) -> str:
    return "command line" if source == "command line" else "mail"
