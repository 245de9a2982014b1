"""What a staff member sets for themselves by mail: away (`#away [until DATE]`) and the
daily digest (`#digest on|off`), in their `staff_state` row; each change is an event
about no ticket, with who and how."""

from __future__ import annotations

from datetime import datetime

from mailbridge.app import Step
from mailbridge.db import queries
from mailbridge.db.models import StaffState


def staff_event(step: Step, event_type: str, /, **data: object) -> None:
    """An audit event about a person rather than a ticket (`ticket_id` NULL)."""
    queries.insert_event(step.session, None, step.now, event_type, data)


def _state(step: Step, address: str) -> StaffState:
    row = step.session.get(StaffState, address)
    if row is None:
        row = StaffState(address=address, digest_enabled=True, updated_at=step.now)
        step.session.add(row)
    return row


def set_away(step: Step, address: str, until: datetime | None, *, via: str) -> None:
    """Away from now; `until` None: no return date, until their next mail that is not a
    query (the absence rules end it)."""
    row = _state(step, address.lower())
    row.away_since = step.now
    row.away_until = until
    row.away_source = "mail" if via == "mail" else via
    row.updated_at = step.now
    staff_event(
        step,
        "staff_away",
        address=address.lower(),
        until=until.isoformat() if until else None,
        by=address.lower(),
        via=via,
    )


def set_digest(step: Step, address: str, enabled: bool, *, via: str) -> None:
    row = _state(step, address.lower())
    before = row.digest_enabled
    row.digest_enabled = enabled
    row.updated_at = step.now
    staff_event(
        step,
        "digest_changed",
        address=address.lower(),
        enabled=enabled,
        was=before,
        by=address.lower(),
        via=via,
    )
