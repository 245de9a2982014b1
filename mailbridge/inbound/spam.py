"""Spam on the processing path: the judgement of a mail that would open a ticket, what the
rules and `[spam] action` make of it, and the quiet life of a spam ticket.

Only a customer's mail that would open a ticket is judged (one indexed look-up of the
sender in `sender_rule`). A follow-up joins its ticket unjudged, whoever sends it: a
filter's false positive must not hide a real conversation, and a sender blocked after
their ticket was opened (or whose mail a person released) keeps the conversation staff
have; to silence it, staff mark that ticket spam. A follow-up onto a spam ticket is
recorded there and changes nothing: no reopening, acknowledgement or notification.

A mail released from `ignored` (`inbound_message.released_at`, cli/ignored.py) is a
person's decision: it becomes a ticket whatever the rules' spam and ignore actions or the
judgement say (docs/architecture.md, "Spam"). Runs inside the caller's transaction.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from mailbridge.app import Step
from mailbridge.config import Config
from mailbridge.core.disposition import TICKET, Disposition, dispose
from mailbridge.core.message import ParsedMessage
from mailbridge.core.rules import Decision
from mailbridge.core.spam import Judgement, judge
from mailbridge.core.spam_headers import trusted_verdict
from mailbridge.db.models import Article, InboundMessage, Ticket
from mailbridge.inbound import routing
from mailbridge.tickets import tallies
from mailbridge.tickets.events import Applied, add_event
from mailbridge.tickets.sender_lists import sender_lists

__all__ = [
    "followup_on_spam",
    "judge_mail",
    "judge_parsed",
    "note_release",
    "route_and_dispose",
    "settle_spam",
]


def judge_mail(step: Step, parsed: ParsedMessage) -> Judgement:
    """Spam or not by the lists (configuration and table) and the filter's verdict, over
    the sender's address (From, core/sender.py): allow beats block beats the verdict."""
    return judge_parsed(step.session, step.app.config, parsed)


def judge_parsed(session: Session | None, config: Config, parsed: ParsedMessage) -> Judgement:
    """judge_mail outside processing (`rules test`): the same lists, the same verdict;
    without a session, the configuration's lists alone."""
    sender = parsed.from_.address if parsed.from_ else ""
    allow, block = config.spam.allow, config.spam.block
    if session is not None:
        allow, block = sender_lists(session, config, sender)
    return judge(sender, allow=allow, block=block, verdict=trusted_verdict(parsed, config.spam))


def route_and_dispose(
    step: Step, inbound: InboundMessage, parsed: ParsedMessage
) -> tuple[Decision, Disposition]:
    """The rules' decision for a customer's mail opening a ticket (they see the judgement
    as `when.spam`), and what becomes of the mail (core/disposition.py)."""
    judgement = judge_mail(step, parsed)
    routed = routing.decide(step, parsed, inbound.mailbox, spam=judgement.spam)
    if inbound.released_at is not None:
        return routed, TICKET
    config = step.app.config
    return routed, dispose(judgement, routed, config.routing, config.spam.action)


def settle_spam(step: Step, ticket: Ticket, disposition: Disposition, routed: Decision) -> Applied:
    """A ticket opened as spam (status, spam_at and no deadlines set by apply): the one
    event saying why, and nothing else: no acknowledgement, notification or participant."""
    add_event(
        step, ticket, "spam", reason=disposition.reason, rules=list(routed.matched), by="processing"
    )
    tallies.marked_spam(step, ticket)
    return Applied.to(ticket, "spam", reason=disposition.reason)


def followup_on_spam(step: Step, ticket: Ticket, article: Article) -> Applied:
    """Mail threading onto a spam ticket stays there, on the record only."""
    ticket.updated_at = step.now
    add_event(step, ticket, "spam_followup", article_id=article.id)
    return Applied.to(ticket, "followup", reason="to a spam ticket")


def note_release(step: Step, ticket: Ticket, inbound: InboundMessage) -> str:
    """The ticket of a released mail says it was one, and why it had been ignored (the
    reason stored then, still on the message); the reason for the message, "" for mail
    nobody released."""
    if inbound.released_at is None:
        return ""
    add_event(step, ticket, "released", inbound_message_id=inbound.id, was=inbound.reason)
    return f"released from ignored (was: {inbound.reason or 'no reason'})"
