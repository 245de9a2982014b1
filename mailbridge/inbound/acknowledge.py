"""Acknowledging a new ticket: the named checks that may withhold it, the hourly limits
(per address, per domain, per mailbox, counted in the acknowledgement ledger), and the
mail itself, minimal when the address it goes to is not authenticated.

Runs inside the caller's transaction, like the rest of apply.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from mailbridge.adapters.faq_files import suggest
from mailbridge.app import App, Step
from mailbridge.core.ack_policy import (
    LimitKey,
    authenticated_by,
    domain_of,
    limit_keys,
    minimal_context,
)
from mailbridge.core.compose import can_write_address
from mailbridge.core.faq import plain_text
from mailbridge.core.humanize import excerpt
from mailbridge.core.message import Address, ParsedMessage, Verdict
from mailbridge.core.rules import Decision
from mailbridge.core.sender import NO_SENDER
from mailbridge.db import queries
from mailbridge.db.models import Article, InboundMessage, Ticket
from mailbridge.inbound import bounces, routing
from mailbridge.outbound.queue import Mail, queue_mail, ticket_context
from mailbridge.tickets.events import add_event

__all__ = ["ACK_TEMPLATE", "maybe_acknowledge"]

log = logging.getLogger(__name__)

ACK_TEMPLATE = "acknowledgement"
FAQ_QUESTION_CHARS = 1000  # of the customer's own words, after the subject
FAQ_SUBJECT_CHARS = 300  # ranking costs about 40 µs per subject character
LIMIT_WINDOW = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class AckCase:
    """Everything the checks look at: one new ticket and the mail that opened it."""

    step: Step
    ticket: Ticket
    inbound: InboundMessage
    parsed: ParsedMessage
    verdict: Verdict
    routed: Decision

    @property
    def session(self) -> Session:
        return self.step.session

    @property
    def app(self) -> App:
        return self.step.app

    @property
    def now(self) -> datetime:
        return self.step.now

    @property
    def sender(self) -> str:
        return self.parsed.from_.address if self.parsed.from_ else ""

    @property
    def authenticated(self) -> str | None:
        """How the trusted MTA authenticated the domain of the address the acknowledgement
        goes to ("dkim", "dmarc", "spf"), or None."""
        return authenticated_by(
            self.parsed.headers,
            self.app.config.staff.trusted_authserv_id,
            self.ticket.requester_address,
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    check: str  # the name of the check that withheld the acknowledgement
    reason: str
    data: dict[str, object]


Check = Callable[[AckCase], Refusal | None]


def maybe_acknowledge(
    step: Step,
    ticket: Ticket,
    article: Article,
    inbound: InboundMessage,
    parsed: ParsedMessage,
    verdict: Verdict,
    routed: Decision,
) -> bool:
    """Queue the acknowledgement, or record on the ticket which check withheld it."""
    case = AckCase(step, ticket, inbound, parsed, verdict, routed)
    refusal = next((r for check in CHECKS if (r := check(case)) is not None), None)
    if refusal is not None:
        add_event(
            step,
            ticket,
            "ack_suppressed",
            check=refusal.check,
            reason=refusal.reason,
            **refusal.data,
        )
        return False
    _queue(case, article)
    return True


# --- the checks, in order ----------------------------------------------------------------


def automated(case: AckCase) -> Refusal | None:
    verdict = case.verdict
    if verdict.automated:
        return Refusal(
            "automated",
            f"automated mail ({verdict.kind}: {', '.join(verdict.rules)})",
            {"rules": list(verdict.rules)},
        )
    if verdict.ack_withheld_by:
        return Refusal(
            "classified",
            f"looks like bulk mail ({', '.join(verdict.ack_withheld_by)})",
            {"rules": list(verdict.ack_withheld_by)},
        )
    return None


def unusable_address(case: AckCase) -> Refusal | None:
    address = case.ticket.requester_address
    if not address:
        return Refusal("unusable_address", f"no sender address: {NO_SENDER}", {})
    if "@" not in address:
        return Refusal("unusable_address", "no usable sender address", {})
    if address in case.app.identity.own_addresses:
        return Refusal("unusable_address", "sender is one of our own addresses", {})
    if not can_write_address(address):
        return Refusal("unusable_address", f"an address no mail can be written to: {address!r}", {})
    return None


def bouncing(case: AckCase) -> Refusal | None:
    address = case.ticket.requester_address
    # A requester who just wrote is not bouncing (their mail cleared any flag): no look-up.
    if address == case.sender:
        return None
    reason = bounces.bounce_refusal(case.session, address)
    return Refusal("bouncing", reason, {}) if reason else None


def backlog(case: AckCase) -> Refusal | None:
    """backlog = "import": old mail found at the first connection gets a ticket, no ack."""
    mailbox = case.app.config.mailbox_named(case.inbound.mailbox)
    if not case.inbound.backlog or mailbox.backlog != "import":
        return None
    arrived = case.inbound.arrived_at or case.parsed.date or case.now
    if case.now - arrived <= mailbox.backlog_age:
        return None
    return Refusal(
        "backlog",
        f"backlog: arrived {arrived.isoformat(timespec='minutes')}, "
        f"before the first connection and more than {mailbox.backlog_age} ago",
        {},
    )


def routing_rule(case: AckCase) -> Refusal | None:
    if not case.routed.actions.no_ack:
        return None
    return Refusal("rule", f"no_ack: {routing.because(case.routed)}", {})


def rate_limits(case: AckCase) -> Refusal | None:
    """The hourly limits, narrowest first; a withheld acknowledgement is counted under its
    limit (for /metrics) and the limit is logged once an hour per address, domain or
    mailbox, however many mails it stops."""
    tickets = case.app.config.tickets
    address = case.ticket.requester_address
    since = case.now - LIMIT_WINDOW
    for key in limit_keys(
        address,
        case.ticket.mailbox,
        tickets.ack_limit_per_hour,
        tickets.ack_domain_limit_per_hour,
        tickets.ack_mailbox_limit_per_hour,
        authenticated=case.authenticated is not None,
    ):
        recent = queries.acknowledgements_since(case.session, key.limit, key.key, since)
        if recent >= key.per_hour:
            _log_limit_once(case, key, recent)
            queries.record_acknowledgement(
                case.session,
                case.ticket,
                address,
                domain_of(address),
                case.now,
                withheld_by=key.limit,
            )
            return Refusal(
                "rate_limit",
                f"rate limit: {recent} acknowledgements to this {key.limit} in the last hour",
                {"limit": key.limit, "key": key.key},
            )
    return None


CHECKS: tuple[Check, ...] = (
    automated,
    unusable_address,
    bouncing,
    backlog,
    routing_rule,
    rate_limits,
)


def _log_limit_once(case: AckCase, key: LimitKey, recent: int) -> None:
    """Log the first acknowledgement a limit withholds in an hour (the ledger remembers,
    across restarts and instances); later ones show only in /metrics and on the tickets."""
    earlier = queries.acknowledgements_since(
        case.session, key.limit, key.key, case.now - LIMIT_WINDOW, withheld_by=key.limit
    )
    if earlier:
        return
    log.warning(
        "acknowledgements withheld: %d sent to %s %s in the last hour, the limit "
        "is %d (ticket #%s); further ones withheld this hour are not logged",
        recent,
        key.limit,
        key.key,
        key.per_hour,
        case.ticket.number,
    )


# --- the mail --------------------------------------------------------------------------------


def _queue(case: AckCase, article: Article) -> None:
    step, ticket, parsed = case.step, case.ticket, case.parsed
    session, app, now = step.session, step.app, step.now
    language = ticket.language or app.config.templates.language
    address = ticket.requester_address
    proof = case.authenticated
    full = proof is not None or app.config.tickets.ack_unauthenticated == "full"
    context = ticket_context(app, ticket, language)
    context["minimal"] = False
    if full:
        context["excerpt"] = excerpt(parsed.reply_text or parsed.text)
        context["faq"] = _offer_faq(case, language)
        to = Address(ticket.requester_name, address)
        in_reply_to = parsed.message_id
        refs = [*parsed.references, *([in_reply_to] if in_reply_to else [])]
    else:
        # Nothing of the mail: not its words, the name or subject it chose, nor its ids,
        # which are text of the sender's choosing too. The subject tag still threads.
        context = minimal_context({**context, "faq": []})
        to, in_reply_to, refs = Address("", address), None, []
    row = queue_mail(
        step,
        Mail(
            kind="ack",
            ticket=ticket,
            template=case.routed.actions.ack_template or ACK_TEMPLATE,
            context=context,
            to=[to],
            language=language,
            unique=f"ack.{ticket.id}.{article.id}",
            in_reply_to=in_reply_to,
            references=refs,
        ),
    )
    queries.record_acknowledgement(session, ticket, address, domain_of(address), now)
    add_event(
        step,
        ticket,
        "ack_queued",
        outbox_id=row.id,
        message_id=row.message_id,
        form="full" if full else "minimal",
        authenticated=proof,
    )


def _offer_faq(case: AckCase, language: str) -> list[dict[str, object]]:
    """The FAQ answers that fit the customer's question, recorded on the ticket as offered."""
    index = case.app.faq
    if index is None:
        return []
    parsed = case.parsed
    # What they wrote now, not the quoted history below it.
    own = (parsed.reply_text or parsed.text)[:FAQ_QUESTION_CHARS]
    matches = suggest(case.app.config, index, parsed.subject[:FAQ_SUBJECT_CHARS], own, language)
    if not matches:
        return []
    add_event(
        case.step,
        case.ticket,
        "faq_offered",
        offered=[{"file": m.entry.file, "score": m.score} for m in matches],
    )
    return [
        {
            "title": m.entry.title,
            "answer": plain_text(m.entry.body),
            "file": m.entry.file,
            "score": m.score,
        }
        for m in matches
    ]
