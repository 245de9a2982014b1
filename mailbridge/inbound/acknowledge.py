"""Acknowledging a new ticket: the facts core.ack_policy decides on (read from the mail,
the configuration, the bounce flags and the acknowledgement ledger's hourly counts per
address, domain and mailbox), and what the decision leads to: the mail itself, minimal
when the address it goes to is not authenticated, or the record of which check withheld it.

Runs inside the caller's transaction, like the rest of apply.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

from mailbridge.adapters.faq_files import suggest
from mailbridge.app import Step
from mailbridge.core.ack_policy import (
    AckDecision,
    AckFacts,
    LimitKey,
    authenticated_by,
    automated,
    backlog,
    bouncing,
    decide,
    domain_of,
    limit_keys,
    minimal_context,
    routing_rule,
    unusable_address,
)
from mailbridge.core.faq import plain_text
from mailbridge.core.humanize import excerpt
from mailbridge.core.message import Address, ParsedMessage, Verdict
from mailbridge.core.rules import Decision
from mailbridge.db import queries, turn
from mailbridge.db.models import Article, InboundMessage, Ticket
from mailbridge.db.stored_bytes import raw_of
from mailbridge.inbound import bounces, routing
from mailbridge.inbound.prepare import prepare
from mailbridge.outbound.queue import Mail, queue_mail, ticket_context
from mailbridge.tickets import tallies
from mailbridge.tickets.events import add_event
from mailbridge.tickets.spam import opening_article

__all__ = ["ACK_TEMPLATE", "acknowledge_late", "maybe_acknowledge"]

log = logging.getLogger(__name__)

ACK_TEMPLATE = "acknowledgement"
FAQ_QUESTION_CHARS = 1000  # of the customer's own words, after the subject
FAQ_SUBJECT_CHARS = 300  # ranking costs about 40 µs per subject character
LIMIT_WINDOW = timedelta(hours=1)


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
    facts = ack_facts(step, ticket, inbound, parsed, verdict, routed)
    decision = decide(facts)
    if decision.form == "skip":
        if decision.limit is not None:
            _withheld_by_limit(step, ticket, decision.limit, decision.recent)
        add_event(
            step,
            ticket,
            "ack_suppressed",
            check=decision.check,
            reason=decision.reason,
            **decision.data,
        )
        return False
    _queue(step, ticket, article, parsed, routed.actions.ack_template or ACK_TEMPLATE, decision)
    return True


def acknowledge_late(step: Step, ticket: Ticket) -> bool:
    """The acknowledgement a ticket never got (it was spam until staff said otherwise):
    the mail it was opened with, read again, meets the checks it would have met on arrival
    (the hourly limits counted now); a mail no longer stored, or one a staff member
    forwarded, is not acknowledged."""
    article = opening_article(step.session, ticket.id)
    inbound = None
    if article is not None and article.inbound_message_id is not None:
        inbound = step.session.get(InboundMessage, article.inbound_message_id)
    if article is None or inbound is None or not (inbound.raw or inbound.raw_sha256):
        return _not_late(step, ticket, "the mail the ticket was opened with is no longer stored")
    # Here, not in a parse worker: this mail was prepared within its budget once already.
    raw = raw_of(step.session, inbound)
    parsed, verdict = prepare(raw, step.app.parse_limits, step.app.identity)
    sender = parsed.from_.address.lower() if parsed.from_ else ""
    if sender != article.from_address.lower():
        return _not_late(step, ticket, "the ticket was opened from a staff member's forward")
    customer = verdict.kind == "customer"
    routed = routing.decide(step, parsed, inbound.mailbox) if customer else routing.NO_DECISION
    return maybe_acknowledge(step, ticket, article, inbound, parsed, verdict, routed)


def _not_late(step: Step, ticket: Ticket, reason: str) -> bool:
    add_event(step, ticket, "ack_suppressed", check="late", reason=reason)
    return False


def ack_facts(
    step: Step,
    ticket: Ticket,
    inbound: InboundMessage,
    parsed: ParsedMessage,
    verdict: Verdict,
    routed: Decision,
) -> AckFacts:
    """What core.ack_policy.decide looks at, read from the mail, the configuration and the
    database (whether the address bounces, the acknowledgement ledger's hourly counts).

    The database is asked only for what the checks before it leave open, in their order:
    an automated mail or an unusable address costs no query, a bouncing address, old
    backlog mail or a no_ack rule no ledger count."""
    app, now = step.app, step.now
    tickets = app.config.tickets
    address = ticket.requester_address
    mailbox = app.config.mailbox_named(inbound.mailbox)
    authenticated = authenticated_by(parsed.headers, app.config.staff.trusted_authserv_id, address)
    facts = AckFacts(
        kind=verdict.kind,
        rules=verdict.rules,
        automated=verdict.automated,
        withheld_by=verdict.ack_withheld_by,
        address=address,
        own_addresses=app.identity.own_addresses,
        bouncing="",
        backlog_age=mailbox.backlog_age
        if inbound.backlog and mailbox.backlog == "import"
        else None,
        arrived=inbound.arrived_at or parsed.date or now,
        now=now,
        no_ack_rule=routing.because(routed) if routed.actions.no_ack else "",
        limits=(),
        authenticated=authenticated,
        unauthenticated_form=tickets.ack_unauthenticated,
    )
    if automated(facts) or unusable_address(facts):
        return facts
    sender = parsed.from_.address if parsed.from_ else ""
    # A requester who just wrote is not bouncing (their mail cleared any flag): no look-up.
    if sender != address:
        facts = replace(facts, bouncing=bounces.bounce_refusal(step.session, address))
    if bouncing(facts) or backlog(facts) or routing_rule(facts):
        return facts
    keys = limit_keys(
        address,
        ticket.mailbox,
        tickets.ack_limit_per_hour,
        tickets.ack_domain_limit_per_hour,
        tickets.ack_mailbox_limit_per_hour,
        authenticated=authenticated is not None,
    )
    asked = [(key.limit, key.key) for key in keys]
    recent = queries.acknowledgements_since_each(step.session, asked, now - LIMIT_WINDOW)
    counts = tuple((key, _count(step, key, n)) for key, n in zip(keys, recent, strict=True))
    return replace(facts, limits=counts)


def _count(step: Step, key: LimitKey, recent: int) -> int:
    """The hour's count for a limit; a key processing left unlocked because it was full
    counts as full (db/turn.py), so no other instance's batch can open it meanwhile."""
    if turn.limit_skipped(step.session, key.limit, key.key):
        return max(recent, key.per_hour)
    return recent


def _withheld_by_limit(step: Step, ticket: Ticket, key: LimitKey, recent: int) -> None:
    """A withheld acknowledgement is counted under its limit (for /metrics) and the limit
    is logged once an hour per address, domain or mailbox, however many mails it stops."""
    _log_limit_once(step, ticket, key, recent)
    address = ticket.requester_address
    queries.record_acknowledgement(
        step.session, ticket, address, domain_of(address), step.now, withheld_by=key.limit
    )
    tallies.acknowledgement_withheld(step, key.limit)


def _log_limit_once(step: Step, ticket: Ticket, key: LimitKey, recent: int) -> None:
    """Log the first acknowledgement a limit withholds in an hour (the ledger remembers,
    across restarts and instances); later ones show only in /metrics and on the tickets."""
    earlier = queries.acknowledgements_since(
        step.session, key.limit, key.key, step.now - LIMIT_WINDOW, withheld_by=key.limit
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
        ticket.number,
    )


# --- the mail --------------------------------------------------------------------------------


def _queue(
    step: Step,
    ticket: Ticket,
    article: Article,
    parsed: ParsedMessage,
    template: str,
    decision: AckDecision,
) -> None:
    app = step.app
    language = ticket.language or app.brand(ticket.mailbox).language
    address = ticket.requester_address
    full = decision.form == "full"
    context = ticket_context(app, ticket, language)
    context["minimal"] = False
    if full:
        context["excerpt"] = excerpt(parsed.reply_text or parsed.text)
        context["faq"] = _offer_faq(step, ticket, parsed, language)
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
            template=template,
            context=context,
            to=[to],
            language=language,
            unique=f"ack.{ticket.id}.{article.id}",
            in_reply_to=in_reply_to,
            references=refs,
        ),
    )
    queries.record_acknowledgement(step.session, ticket, address, domain_of(address), step.now)
    add_event(
        step,
        ticket,
        "ack_queued",
        outbox_id=row.id,
        message_id=row.message_id,
        form="full" if full else "minimal",
        authenticated=decision.authenticated,
    )


def _offer_faq(
    step: Step, ticket: Ticket, parsed: ParsedMessage, language: str
) -> list[dict[str, object]]:
    """The FAQ answers that fit the customer's question, recorded on the ticket as offered."""
    index = step.app.faq
    if index is None:
        return []
    # What they wrote now, not the quoted history below it.
    own = (parsed.reply_text or parsed.text)[:FAQ_QUESTION_CHARS]
    matches = suggest(step.app.config, index, parsed.subject[:FAQ_SUBJECT_CHARS], own, language)
    if not matches:
        return []
    add_event(
        step,
        ticket,
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
