"""Opening a ticket for a mail: its requester, queue, priority, language and deadlines, as
the mailbox, the rules' actions and the SLA policy give them, and the `created` event. A
spam ticket opens with status `spam` and no deadline. Runs inside the caller's transaction.
"""

from __future__ import annotations

from mailbridge.app import App, Step
from mailbridge.core.clip import clip_text
from mailbridge.core.message import Address, ParsedMessage, Verdict
from mailbridge.core.parse import normalize_subject
from mailbridge.core.rules import Actions
from mailbridge.core.states import TicketStatus
from mailbridge.db import queries
from mailbridge.db.models import InboundMessage, Ticket
from mailbridge.inbound.acknowledge import ACK_TEMPLATE
from mailbridge.tickets import participants, tallies
from mailbridge.tickets.deadlines import deadlines_for_new_ticket
from mailbridge.tickets.events import add_event
from mailbridge.tickets.requester import STORED_NAME

__all__ = ["open_ticket"]


def open_ticket(
    step: Step,
    inbound: InboundMessage,
    parsed: ParsedMessage,
    verdict: Verdict,
    routed: Actions,
    *,
    as_spam: bool = False,
) -> Ticket:
    """A spam ticket (`as_spam`) has no deadline and its status says so from the start."""
    mailbox = step.app.config.mailbox_named(inbound.mailbox)
    requester = _reply_address(step.app, parsed)
    priority = routed.priority or "normal"
    queue = routed.queue or mailbox.effective_queue
    deadlines = deadlines_for_new_ticket(
        step.app, mailbox.name, priority, step.now, queue, routed.sla_policy
    )
    policy = deadlines.policy
    # Automated mail is recorded and visible, but nobody is paged for a newsletter.
    tracked = verdict.kind == "customer" and not as_spam
    ticket = Ticket(
        subject=normalize_subject(parsed.subject) or "(no subject)",
        requester_name=clip_text(requester.name, STORED_NAME),
        requester_address=requester.address,
        mailbox=mailbox.name,
        queue=queue,
        priority=priority,
        status=TicketStatus.SPAM if as_spam else TicketStatus.NEW,
        language=_language(step.app, mailbox.name, parsed, routed.ack_template),
        sla_policy=policy.name,
        created_at=step.now,
        updated_at=step.now,
        first_response_due_at=deadlines.first_response if tracked else None,
        resolution_due_at=deadlines.resolution if tracked else None,
        escalation_level=0,
        next_escalation_at=deadlines.next_due if tracked else None,
        spam_at=step.now if as_spam else None,
    )
    queries.insert_ticket(step.session, ticket, step.app.config.tickets.number_start)
    participants.opened(step.session, ticket)
    add_event(
        step,
        ticket,
        "created",
        kind=verdict.kind,
        rules=list(verdict.rules),
        sla_policy=policy.name,
        message_id=parsed.message_id,
    )
    tallies.ticket_created(step, ticket)
    return ticket


def _reply_address(app: App, parsed: ParsedMessage) -> Address:
    """Where answers go: Reply-To unless it points back at us, else From."""
    for candidate in parsed.reply_to:
        if candidate.address and candidate.address not in app.identity.own_addresses:
            return candidate
    return parsed.from_ or Address("", "")


def _language(app: App, mailbox: str, parsed: ParsedMessage, ack_template: str | None) -> str:
    """The customer's language when the mailbox's templates have it, else the mailbox's."""
    templates = app.templates.for_mailbox(mailbox)
    return templates.pick_language(ack_template or ACK_TEMPLATE, parsed.language)
