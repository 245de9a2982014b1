"""A customer who writes that the matter is solved before anyone answered ("risolto,
grazie", perhaps after the FAQ answer in the acknowledgement): the ticket is resolved with a
note on its record, and no staff time is spent on it. A later mail reopens it as usual."""

from __future__ import annotations

from mailbridge.app import Step
from mailbridge.core.faq import says_solved
from mailbridge.core.reply_trim import trim_reply
from mailbridge.core.states import TicketStatus
from mailbridge.db.models import Article, Ticket
from mailbridge.tickets import tallies
from mailbridge.tickets.events import add_event

__all__ = ["resolved_by_customer"]

UNANSWERED = frozenset({TicketStatus.NEW, TicketStatus.OPEN})
QUOTED_LIMIT = 300  # characters of the customer's words kept on the record


def resolved_by_customer(step: Step, ticket: Ticket, article: Article) -> bool:
    """Resolve `ticket` when the customer's new `article` just says it is solved."""
    if ticket.status not in UNANSWERED or ticket.first_responded_at is not None:
        return False
    words = trim_reply(article.text_body or "").strip()
    if not says_solved(words, step.app.config.faq.solved_phrases):
        return False
    ticket.status, ticket.resolved_at, ticket.updated_at = TicketStatus.RESOLVED, step.now, step.now
    ticket.next_escalation_at = None
    tallies.resolved(step, ticket)
    add_event(
        step,
        ticket,
        "resolved_by_customer",
        article_id=article.id,
        said=words[:QUOTED_LIMIT],
        note="the customer wrote that the matter is solved; resolved without a staff reply",
    )
    return True
