"""Satisfaction ratings on a ticket: the "yes, solved" / "no, not solved" links a resolution
mail carries, and what a rating does when it arrives (the pure parts are core/rating.py).

A rating is a `rated` event (verdict, how: "token" or "text"), counted by
`mailbridge_ratings_total` (service/snapshot.py). "Not solved" raises the ticket's priority
one step and tags it `unhappy`; reopening it is the ordinary customer follow-up's work
(inbound/rating.py). Runs inside the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from mailbridge.app import App, Step
from mailbridge.core.correlate import format_tag
from mailbridge.core.rating import Rating, rating_address
from mailbridge.core.sla import PRIORITIES
from mailbridge.core.ticket_lines import mailto
from mailbridge.db import queries
from mailbridge.db.models import Article, Ticket
from mailbridge.tickets import tallies
from mailbridge.tickets.deadlines import on_priority_or_queue_change
from mailbridge.tickets.events import add_event

__all__ = ["UNHAPPY_TAG", "rating_links", "record_rating", "token_lifetime", "unhappy"]

UNHAPPY_TAG = "unhappy"
# The subject of the mail each link opens, after the ticket's tag: the customer sees it
# before sending, in their language.
_SUBJECTS = {
    "en": {"good": "yes, solved", "bad": "no, not solved"},
    "it": {"good": "sì, risolto", "bad": "no, non risolto"},
}


def token_lifetime(app: App) -> timedelta:
    """How long rating links work: `[tickets] close_after` when it is on (the time a
    waiting customer is given), else `[tickets] rating_lifetime`."""
    close_after = app.config.tickets.close_after
    return close_after if close_after > timedelta(0) else app.config.tickets.rating_lifetime


def rating_links(app: App, ticket: Ticket, now: datetime) -> dict[str, str]:
    """The template context keys `rating_good_url` and `rating_bad_url`: `mailto:` links to
    the ticket's rating token addresses, the subject carrying the ticket's tag."""
    mailbox = app.config.mailbox_named(ticket.mailbox)
    number = ticket.number or 0
    tag = format_tag(app.config.tickets.tag_prefix, number)
    subjects = _SUBJECTS.get(ticket.language or "", _SUBJECTS["en"])
    expires = now + token_lifetime(app)
    links: dict[str, str] = {}
    for verdict in ("good", "bad"):
        address = rating_address(
            mailbox.address, number, verdict, app.reply_secret, expires=expires
        )
        links[f"rating_{verdict}_url"] = mailto(address, f"{tag} {subjects[verdict]}")
    return links


def record_rating(step: Step, ticket: Ticket, article: Article, verdict: Rating, how: str) -> None:
    """The `rated` event: what the customer said and how (a "token" link or their "text")."""
    ticket.updated_at = step.now
    tallies.rated(step, verdict)
    add_event(
        step,
        ticket,
        "rated",
        verdict=verdict,
        how=how,
        by=article.from_address,
        via="mail",
        article_id=article.id,
        status=ticket.status,
    )


def unhappy(step: Step, ticket: Ticket) -> None:
    """ "Not solved": one step up in priority (urgent stays urgent) and the `unhappy` tag."""
    rank = PRIORITIES.index(ticket.priority) if ticket.priority in PRIORITIES else 1
    raised = PRIORITIES[min(rank + 1, len(PRIORITIES) - 1)]
    if raised != ticket.priority:
        add_event(
            step,
            ticket,
            "priority_raised",
            reason="the customer rated the ticket not solved",
            priority_from=ticket.priority,
            priority_to=raised,
            by="mailbridge",
            via="mail",
        )
        ticket.priority = raised
        on_priority_or_queue_change(step, ticket)
    added = queries.add_ticket_tags(step.session, ticket.id, (UNHAPPY_TAG,), step.now)
    if added:
        add_event(step, ticket, "tagged", tags=added, reason="rated not solved")
