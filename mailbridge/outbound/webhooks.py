"""Queueing webhook deliveries: an audit event that announces something (core/
webhook_events.py) becomes one outbox row of kind `webhook` per `[[webhook]]` that listens
for it, written in the event's own transaction, so each is queued exactly when the event
happens, and once.

The row holds the finished body (`raw`, the bytes signed and sent on every attempt), the
delivery's id (`message_id`, also the body's `id`), the webhook's name (`envelope_to`, never
its URL) and the event (`envelope_from`). outbound/webhook_send.py delivers it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime

from mailbridge.app import Step
from mailbridge.config.webhooks import WebhookConfig
from mailbridge.core.correlate import format_tag
from mailbridge.core.states import WEBHOOK_KIND, OutboxState
from mailbridge.core.webhook_events import (
    Announcement,
    CustomerText,
    EscalationFacts,
    TicketFacts,
    WebhookEvent,
    announced,
    chosen,
)
from mailbridge.core.webhook_formats import body_of
from mailbridge.db import queries
from mailbridge.db.models import Outbox, Ticket

__all__ = ["announce"]

ID_PREFIX = "wh."


def announce(step: Step, ticket: Ticket, event_type: str, data: Mapping[str, object]) -> None:
    """Queue what the audit event `event_type` on `ticket` announces to each webhook that
    listens for it (tickets/events.py calls this for every event it records)."""
    hooks = step.app.config.webhook
    if not hooks:
        return
    events = announced(event_type, data, str(ticket.status))
    if not events:
        return
    for hook in hooks:
        for event in chosen(events, hook.events):
            announcement = _announcement(step, ticket, event, data, hook)
            queue_delivery(step, hook, ticket.id, announcement)


def queue_delivery(
    step: Step, hook: WebhookConfig, ticket_id: int, announcement: Announcement
) -> int:
    """The outbox row of one delivery, pending from the step's moment, written or held as
    its values, as a mail's is (outbound/queue.py); its id."""
    values = {
        "ticket_id": ticket_id,
        "article_id": None,
        "kind": WEBHOOK_KIND,
        "envelope_from": announcement.event,
        "envelope_to": [hook.label],
        "message_id": announcement.id,
        "raw": body_of(hook.format, announcement),
        "state": OutboxState.PENDING,
        "attempts": 0,
        "next_attempt_at": step.now,
        "created_at": step.now,
    }
    return queries.insert_values(step.session, Outbox, values)


def _announcement(
    step: Step, ticket: Ticket, event: WebhookEvent, data: Mapping[str, object], hook: WebhookConfig
) -> Announcement:
    customer = None
    if hook.include_text:
        customer = CustomerText(
            ticket.subject or "", ticket.requester_name or "", ticket.requester_address or ""
        )
    return Announcement(
        id=f"{ID_PREFIX}{secrets.token_hex(16)}",
        event=event,
        at=step.now,
        ticket=ticket_facts(step, ticket),
        escalation=_escalation(data) if event in ("escalated", "sla_breached") else None,
        customer=customer,
    )


def ticket_facts(step: Step, ticket: Ticket) -> TicketFacts:
    number = ticket.number or 0
    return TicketFacts(
        number=number,
        tag=format_tag(step.app.config.tickets.tag_prefix, number),
        mailbox=ticket.mailbox,
        queue=ticket.queue,
        sla_policy=ticket.sla_policy,
        status=str(ticket.status),
        priority=ticket.priority,
        escalation_level=ticket.escalation_level,
        created_at=ticket.created_at,
        first_response_due_at=ticket.first_response_due_at,
        first_responded_at=ticket.first_responded_at,
        resolution_due_at=ticket.resolution_due_at,
        resolved_at=ticket.resolved_at,
    )


def _escalation(data: Mapping[str, object]) -> EscalationFacts | None:
    """The escalation event's own record (tickets/escalate.py, `_act`)."""
    due_at, level = data.get("due_at"), data.get("level")
    if not isinstance(due_at, str) or not isinstance(level, int):
        return None
    overdue = data.get("overdue_minutes")
    return EscalationFacts(
        deadline=str(data.get("deadline", "")),
        level=level,
        due_at=datetime.fromisoformat(due_at),
        overdue_minutes=overdue if isinstance(overdue, int) else 0,
    )
