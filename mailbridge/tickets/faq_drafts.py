"""`#faq save "Title"` on a staff answer: the answer, with keywords from the customer's
question, kept as a draft FAQ entry in `[faq] drafts_dir` for an operator to review
(core/faq_drafts.py writes it, adapters/faq_drafts.py puts it on disk), and a
`faq_draft_saved` event on the ticket.

The question is the mail the customer opened the ticket with: acknowledgements offer FAQ
answers to opening mails only, so an entry's keywords should be the words such a mail uses.
The answer is the reply's own text, as the customer gets it.

Nothing here holds back the answer, which the caller has sent by then: what went wrong is
returned, for the staff member to be told. Runs inside the caller's transaction.
"""

from __future__ import annotations

from sqlalchemy import select

from mailbridge.adapters.faq_drafts import DraftNotSaved, save_draft
from mailbridge.app import Step
from mailbridge.core.faq_drafts import (
    QUESTION_CHARS,
    Draft,
    DraftRefused,
    checked_answer,
    draft_language,
    question_keywords,
    save_title,
    slug,
)
from mailbridge.core.language import detect_language
from mailbridge.core.reply_trim import trim_reply
from mailbridge.core.staff import StaffMessage
from mailbridge.core.states import AuthorKind
from mailbridge.db.models import Article, Ticket
from mailbridge.outbound.queue import ticket_zone
from mailbridge.tickets.events import add_event

__all__ = ["customer_question", "save_from_reply"]


def save_from_reply(step: Step, ticket: Ticket, message: StaffMessage, by: str) -> list[str]:
    """Save the draft `#faq save` asks for (nothing without one); what kept it from being
    saved, for the staff member (empty when it was)."""
    argument = message.argument("faq")
    if argument is None:
        return []
    folder = step.app.config.faq_drafts_dir
    try:
        title = save_title(argument)
        draft = _draft(step, ticket, title, checked_answer(message.text))
        name = save_draft(folder, draft, slug(title, f"ticket-{ticket.number}"))
    except (DraftRefused, DraftNotSaved) as exc:
        return [str(exc)]
    # The file's name, not the folder: events go into a customer's data export.
    add_event(step, ticket, "faq_draft_saved", by=by, file=name, title=title)
    return []


def _draft(step: Step, ticket: Ticket, title: str, answer: str) -> Draft:
    subject, question = customer_question(step, ticket)
    name_words = [ticket.requester_name, ticket.requester_address.partition("@")[0]]
    language = ticket.language or detect_language(f"{subject}\n{question}")
    return Draft(
        title=title,
        keywords=question_keywords(subject, question, name_words),
        language=draft_language(language, step.app.brand(ticket.mailbox).language),
        ticket=ticket.number or 0,
        saved=step.now.astimezone(ticket_zone(step.app, ticket)).date(),
        answer=answer,
    )


def customer_question(step: Step, ticket: Ticket) -> tuple[str, str]:
    """(subject, own words) of the mail the customer opened the ticket with; the ticket's
    subject and no words when no customer mail is on it (a ticket staff opened)."""
    query = (
        select(Article.subject, Article.text_body)
        .where(
            Article.ticket_id == ticket.id,
            Article.direction == "in",
            Article.author_kind == AuthorKind.CUSTOMER,
        )
        .order_by(Article.id)
        .limit(1)
    )
    found = step.session.execute(query).first()
    if found is None:
        return ticket.subject, ""
    subject, text = found
    # Only the start is read: its own words come first, and the rest would cost time.
    return subject or ticket.subject, trim_reply((text or "")[: QUESTION_CHARS * 10])[
        :QUESTION_CHARS
    ]
