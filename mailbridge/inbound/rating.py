"""A customer's rating arriving by mail: a mail to a rating token address (the "yes, solved" /
"no, not solved" links of the resolution mail), or a short reply to a resolved or closed
ticket that says so in its own words (core/rating.py).

The token is the proof, as a click on a link would be: it names its ticket even without
References and from someone who was never on the ticket. A forged or expired token proves
nothing: the mail goes on as an ordinary one. A "good" rating is recorded and changes
nothing else (a resolved ticket stays resolved, staff are not told: there is nothing to
do); a "bad" one is recorded, and the mail then goes the customer follow-up's way (the
ticket reopens, the routing rules run) at raised priority with the `unhappy` tag
(tickets/rating.py). Runs inside the caller's transaction, like the rest of apply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mailbridge.app import Step
from mailbridge.core.message import ParsedMessage, Verdict
from mailbridge.core.rating import Rating, RatingToken, check_rating, classify_reply, find_rating
from mailbridge.core.reply_trim import trim_reply
from mailbridge.core.states import CLOSED_STATUSES
from mailbridge.db.models import Article, Ticket
from mailbridge.inbound.identity import recipients
from mailbridge.tickets.merge import live_ticket_by_number
from mailbridge.tickets.rating import record_rating, unhappy

__all__ = ["Rated", "after_followup", "rate", "ticket_named"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rated:
    verdict: Rating
    how: str  # "token" | "text"


def _valid_token(step: Step, parsed: ParsedMessage, *, quiet: bool = False) -> RatingToken | None:
    found = find_rating(recipients(parsed), step.app.identity.own_addresses)
    if found is None:
        return None
    refusal = check_rating(step.app.reply_secret, found, step.now)
    if refusal is not None and not quiet:
        log.warning(
            "rating address for ticket #%d not accepted (%s); handled as ordinary mail",
            found.ticket_number,
            refusal,
        )
    return None if refusal else found


def ticket_named(step: Step, parsed: ParsedMessage, verdict: Verdict) -> Ticket | None:
    """The ticket a customer's mail to a valid rating token address rates (a merged
    ticket's rating goes to the ticket it was merged into); None for any other mail."""
    if verdict.kind != "customer":
        return None
    found = _valid_token(step, parsed)
    return live_ticket_by_number(step.session, found.ticket_number) if found else None


def rate(step: Step, ticket: Ticket, article: Article, parsed: ParsedMessage) -> Rated | None:
    """Record the rating a customer's follow-up on `ticket` gives, if it gives one: by a
    valid token that names this ticket, else, on a resolved or closed ticket, by its
    words. Before the follow-up changes the ticket, so the event says what it rated."""
    found = _valid_token(step, parsed, quiet=True)  # ticket_named told of a bad one
    rated = None
    if found is not None:
        named = live_ticket_by_number(step.session, found.ticket_number)
        if named is not None and named.id == ticket.id:
            rated = Rated(found.verdict, "token")
    if rated is None and ticket.status in CLOSED_STATUSES:
        said = classify_reply(trim_reply(article.text_body or ""))
        rated = Rated(said, "text") if said else None
    if rated is not None:
        record_rating(step, ticket, article, rated.verdict, rated.how)
    return rated


def after_followup(step: Step, ticket: Ticket, rated: Rated | None) -> None:
    """Once the follow-up reopened the ticket: "not solved" raises it and tags it."""
    if rated is not None and rated.verdict == "bad":
        unhappy(step, ticket)
