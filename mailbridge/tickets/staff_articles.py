"""A staff member's mail as an article on a ticket: an answer, an internal note, or a held
draft (inbound/staff.py, inbound/collision.py, inbound/forward.py). Runs inside the
caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailbridge.app import Step
from mailbridge.core.message import ParsedMessage
from mailbridge.core.states import AuthorKind
from mailbridge.db.models import Article, InboundMessage, Ticket


@dataclass(frozen=True, slots=True)
class StaffWords:
    """What a staff member's mail puts on the ticket: who wrote it, the text, whether it is
    an internal note, and the ids and recipients the article records. `kind` names what
    the article is when it is neither a "reply" nor a "note" (a held "draft")."""

    address: str
    text: str
    note: bool
    message_id: str | None
    to: list[str]
    cc: list[str]
    kind: str | None = None


def add_staff_article(
    step: Step, ticket: Ticket, inbound: InboundMessage, parsed: ParsedMessage, words: StaffWords
) -> Article:
    """The article, flushed so that its id can be recorded in events and outbox rows."""
    article = Article(
        ticket_id=ticket.id,
        direction="out",
        author_kind=AuthorKind.STAFF,
        kind=words.kind or ("note" if words.note else "reply"),
        from_name=parsed.from_.name if parsed.from_ else "",
        from_address=words.address,
        to=words.to,
        cc=words.cc,
        message_id=words.message_id,
        in_reply_to=parsed.in_reply_to,
        subject=parsed.subject,
        text_body=words.text,
        html_body=None,
        internal=words.note,
        defects=list(parsed.defects),
        created_at=step.now,
        inbound_message_id=inbound.id,
    )
    step.session.add(article)
    step.session.flush()
    return article
