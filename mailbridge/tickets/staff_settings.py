"""What a staff member sets for themselves by mail besides away (tickets/absence.py): the
daily digest (`#digest on|off`), in their `staff_state` row; each change is an event
about no ticket, with who and how."""

from __future__ import annotations

from mailbridge.app import Step
from mailbridge.db.models import StaffState
from mailbridge.tickets.events import add_general_event


def _state(step: Step, address: str) -> StaffState:
    row = step.session.get(StaffState, address)
    if row is None:
        row = StaffState(address=address, digest_enabled=True, updated_at=step.now)
        step.session.add(row)
    return row


def set_digest(step: Step, address: str, enabled: bool, *, via: str) -> None:
    row = _state(step, address.lower())
    before = row.digest_enabled
    row.digest_enabled = enabled
    row.updated_at = step.now
    add_general_event(
        step,
        "digest_changed",
        address=address.lower(),
        enabled=enabled,
        was=before,
        by=address.lower(),
        via=via,
    )
