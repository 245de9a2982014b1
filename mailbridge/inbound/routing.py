"""Routing: the configured rules decide, for one customer mail, what happens to its ticket.

At creation the rules' queue, priority and SLA policy choose the deadlines the ticket starts
with (`decide`, read by apply); `apply_new` then records each matching rule and sets the
assignee, the tags and a nearer first-response deadline. On a follow-up (`apply_followup`)
the rules see `followup = true` and how many mails the customer has sent since our last
reply; there a rule may raise the priority but never lowers it, sets the assignee only on an
unassigned ticket, and the acknowledgement, spam and ignore actions mean nothing (follow-ups
get no acknowledgement and are not judged: inbound/spam.py).

Every matching rule leaves a `rule_matched` event naming it and what it set, so staff see
why a ticket is where it is. Runs inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict

from sqlalchemy.orm import Session

from mailbridge.app import Step
from mailbridge.core import sla
from mailbridge.core.humanize import format_duration
from mailbridge.core.message import ParsedMessage
from mailbridge.core.rules import Actions, Decision, Facts, Rule, evaluate, needs_fact
from mailbridge.core.states import CLOSED_STATUSES
from mailbridge.db import queries
from mailbridge.db.models import Ticket
from mailbridge.tickets.deadlines import on_priority_or_queue_change, refresh_next_due, shorten
from mailbridge.tickets.events import add_event

NO_DECISION = Decision()
# Actions whose false says something ("not spam, whatever judged it"), shown as set.
_SAID_FALSE = frozenset({"spam", "ignore"})
# Of the customer's own words, what rules read: what they say about their mood is near the
# start, and a pasted log must not make every regular expression crawl through it.
RULE_TEXT_CHARS = 4000
RULE_SUBJECT_CHARS = 1000  # a subject is a line; a longer one is an attack, not a question


def facts_for(
    parsed: ParsedMessage,
    mailbox: str,
    *,
    followup: bool = False,
    unanswered: int = 1,
    open_tickets: int = 1,
    spam: bool = False,
) -> Facts:
    """What the rules look at: the customer's own words (quoted history trimmed, the first
    RULE_TEXT_CHARS), the subject's first RULE_SUBJECT_CHARS and a bounded view of the
    headers (core/rule_conditions.py), so the operator's patterns never see more than a
    bounded text; and the spam judgement of a mail opening a ticket."""
    recipients = [a.address for a in (*parsed.to, *parsed.cc)]
    for header in ("Delivered-To", "X-Original-To"):
        recipients += [value.strip() for value in parsed.headers.get(header.lower(), ())]
    return Facts(
        sender=parsed.from_.address if parsed.from_ else "",
        mailbox=mailbox,
        recipients=tuple(dict.fromkeys(r for r in recipients if r)),
        subject=parsed.subject[:RULE_SUBJECT_CHARS],
        body=(parsed.reply_text or parsed.text)[:RULE_TEXT_CHARS],
        language=parsed.language,
        has_attachments=any(not a.inline for a in parsed.attachments),
        is_followup=followup,
        customer_mails_unanswered=unanswered,
        customer_open_tickets=open_tickets,
        headers=parsed.headers,
        spam=spam,
    )


def decide(step: Step, parsed: ParsedMessage, mailbox: str, *, spam: bool = False) -> Decision:
    """The rules' decision for a mail opening a ticket (no rules: nothing decided); `spam`
    is the mail's spam judgement (inbound/spam.py)."""
    rules = step.app.config.routing
    if not rules:
        return NO_DECISION
    # The ticket this mail opens is not there yet, and it will be open.
    opened = _open_tickets(step.session, rules, parsed, 1)
    return evaluate(rules, facts_for(parsed, mailbox, open_tickets=opened, spam=spam))


def _open_tickets(session: Session, rules: Sequence[Rule], parsed: ParsedMessage, more: int) -> int:
    """The customer's open tickets, `more` added, when a rule reads them; else 1."""
    if parsed.from_ is None or not needs_fact(rules, "customer_open_tickets"):
        return 1
    return max(queries.open_tickets_of(session, parsed.from_.address) + more, 1)


def apply_new(step: Step, ticket: Ticket, decision: Decision) -> None:
    """After the ticket was opened with the decision's queue, priority and policy."""
    if not decision.matched:
        return
    _record(step, ticket, decision)
    actions = decision.actions
    if actions.assignee is not None:
        ticket.assignee = actions.assignee
    _tag(step, ticket, actions)
    if actions.respond_within is not None and ticket.first_response_due_at is not None:
        shorten(step, ticket, actions.respond_within, reason=because(decision))
        refresh_next_due(step, ticket)


def apply_followup(step: Step, ticket: Ticket, parsed: ParsedMessage) -> Decision:
    """Evaluate the rules on a customer's follow-up and apply what they decide."""
    rules = step.app.config.routing
    if not rules:
        return NO_DECISION
    unanswered = queries.customer_mails_since_staff_reply(step.session, ticket.id)
    opened = _open_tickets(
        step.session, rules, parsed, 0 if ticket.status not in CLOSED_STATUSES else 1
    )
    decision = evaluate(
        rules,
        facts_for(
            parsed,
            ticket.mailbox,
            followup=True,
            unanswered=max(unanswered, 1),
            open_tickets=opened,
        ),
    )
    if not decision.matched:
        return decision
    _record(step, ticket, decision)
    actions = decision.actions
    reason = because(decision)
    priority = sla.raised_priority(ticket.priority, actions.priority)
    queue = actions.queue or ticket.queue
    policy = actions.sla_policy if actions.sla_policy not in (None, ticket.sla_policy) else None
    if priority != ticket.priority:
        add_event(
            step,
            ticket,
            "priority_raised",
            reason=reason,
            priority_from=ticket.priority,
            priority_to=priority,
        )
    if queue != ticket.queue:
        add_event(
            step,
            ticket,
            "queue_changed",
            reason=reason,
            queue_from=ticket.queue,
            queue_to=queue,
        )
    if (priority, queue) != (ticket.priority, ticket.queue) or policy is not None:
        ticket.priority, ticket.queue = priority, queue
        on_priority_or_queue_change(step, ticket, policy_name=actions.sla_policy)
    if actions.assignee is not None and ticket.assignee is None:
        ticket.assignee = actions.assignee
        add_event(step, ticket, "assigned", assignee=actions.assignee, reason=reason)
    _tag(step, ticket, actions)
    if actions.respond_within is not None:
        shorten(step, ticket, actions.respond_within, reason=reason)
        refresh_next_due(step, ticket)
    return decision


def described(rule: Rule) -> dict[str, object]:
    """What one rule sets, as plain values (for events and `mailbridge rules test`)."""
    return actions_dict(rule.then)


def actions_dict(actions: Actions) -> dict[str, object]:
    values: dict[str, object] = {}
    for name, value in asdict(actions).items():
        if value in (None, ()) or (value is False and name not in _SAID_FALSE):
            continue
        if name == "respond_within":
            value = format_duration(value, "en")
        values[name] = list(value) if isinstance(value, tuple) else value
    return values


def summary(actions: Mapping[str, object]) -> str:
    """Actions as people read them: "priority high; tags unhappy, chaser; no_ack"."""
    if not actions:
        return "nothing"
    parts = []
    for key, value in actions.items():
        if isinstance(value, bool):
            parts.append(key if value else f"{key} false")
        else:
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            parts.append(f"{key} {shown}")
    return "; ".join(parts)


def _record(step: Step, ticket: Ticket, decision: Decision) -> None:
    by_name = {rule.name: rule for rule in step.app.config.routing}
    for name in decision.matched:
        add_event(step, ticket, "rule_matched", rule=name, actions=described(by_name[name]))


def _tag(step: Step, ticket: Ticket, actions: Actions) -> None:
    if actions.tags:
        added = queries.add_ticket_tags(step.session, ticket.id, actions.tags, step.now)
        if added:
            add_event(step, ticket, "tagged", tags=added)


def because(decision: Decision) -> str:
    return "rule " + ", ".join(f'"{name}"' for name in decision.matched)
