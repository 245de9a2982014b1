"""What applying one message did (`Applied`; processing stores it on the message), and
`add_event`, which writes an audit event on a ticket at its step's moment (for the apply
steps, the deadlines, the sweep and the commands that change a ticket), with the webhook
deliveries the event announces (outbound/webhooks.py)."""

from __future__ import annotations

from dataclasses import dataclass

from mailbridge.app import Step
from mailbridge.core.states import InboundState
from mailbridge.db import queries
from mailbridge.db.models import Ticket
from mailbridge.outbound.webhooks import announce


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one message did: the state the message ends in, and the ticket it
    went to (the caller stores `ticket_id` on the message with its state, in one UPDATE)."""

    state: InboundState  # processed or ignored
    action: str  # created | followup | duplicate | staff_reply | staff_refused | ignored | …
    ticket_id: int | None = None
    ticket_number: int | None = None
    acknowledged: bool = False
    reason: str = ""

    @classmethod
    def to(
        cls, ticket: Ticket | None, action: str, *, reason: str = "", acknowledged: bool = False
    ) -> Applied:
        """Processed, into `ticket` (None: a processed message that reached no ticket)."""
        if ticket is None:
            return cls(InboundState.PROCESSED, action, reason=reason, acknowledged=acknowledged)
        return cls(InboundState.PROCESSED, action, ticket.id, ticket.number, acknowledged, reason)


def add_event(step: Step, ticket: Ticket, event_type: str, /, **data: object) -> None:
    """Record one audit event on the ticket at the step's moment (written at once, in
    recording order), and queue the webhook deliveries it announces in the same
    transaction: the one seam through which every ticket event passes."""
    queries.insert_event(step.session, ticket.id, step.now, event_type, data)
    announce(step, ticket, event_type, data)


def add_general_event(step: Step, event_type: str, /, **data: object) -> None:
    """Record one audit event about no ticket (a staff member away or back, say)."""
    queries.insert_event(step.session, None, step.now, event_type, data)
