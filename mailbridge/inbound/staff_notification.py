"""Notifications to staff: every new ticket and customer follow-up sends a
`staff_notification` to the assignee or the team address, carrying the customer's text and
attachments and a Reply-To with the ticket's reply token, so that staff can answer by mail
(inbound/staff.py).

Runs inside the caller's transaction, like the rest of apply.
"""

from __future__ import annotations

from sqlalchemy import select

from mailbridge.app import Step
from mailbridge.core.compose import make_message_id
from mailbridge.core.humanize import excerpt
from mailbridge.core.message import Address, ParsedMessage
from mailbridge.core.relay import notified_attachments
from mailbridge.db.models import Article, Ticket
from mailbridge.inbound.identity import audience_of, token_address
from mailbridge.outbound.queue import Mail, Queued, queue_mail, ticket_context, ticket_zone
from mailbridge.tickets import absence, participants

__all__ = ["notify_staff"]


def notify_staff(
    step: Step,
    ticket: Ticket,
    article: Article,
    parsed: ParsedMessage,
    event: str,
    *,
    warning: str = "",
) -> Queued | None:
    """Tell the assignee (else the team) about a new ticket or a customer follow-up
    (`event` "new" or "followup"), or about mail from someone who cannot act on the
    ticket ("unverified", with the `warning` why)."""
    target = ticket.assignee or step.app.config.staff.team_address
    if not target:
        return None
    language = step.app.config.templates.language
    cover = absence.covering(step, target, language)  # an away assignee: the team
    target = cover.target
    context = ticket_context(step.app, ticket, language)
    context["event"] = event
    context["away_note"] = cover.away_note
    context["errors"] = [warning] if warning else []
    if event == "unverified":
        context["requester_name"] = article.from_name
        context["requester_address"] = article.from_address
    text = parsed.reply_text or parsed.text
    context["excerpt"] = text  # shortened with a mark, as every value, by queue_mail
    context["digest"] = _digest(step, ticket, article) if event != "new" else []
    carried, listing = notified_attachments(
        parsed.attachments, step.app.config.staff.notification_attachment_limit
    )
    context["attachments"] = listing
    context["unread"] = list(parsed.unread)
    context["participants"] = [
        {"name": a.name, "address": a.address} for a in participants.cc_of(step, ticket)
    ]
    root = make_message_id(step.app.message_id_domain, f"staff.t{ticket.id}")
    return queue_mail(
        step,
        Mail(
            kind="notification",
            ticket=ticket,
            template="staff_notification",
            context=context,
            to=[Address("", target)],
            language=language,
            unique=f"notify.{ticket.id}.{article.id}",
            in_reply_to=root,
            references=[root],
            reply_to=[
                Address(
                    step.app.config.templates.company,
                    token_address(step.app, ticket, audience_of(step.app, target), step.now),
                )
            ],
            attachments=carried,
            attachments_stored=True,  # with the article (inbound/apply.py)
            article_id=article.id,  # what the staff member saw (inbound/collision.py)
        ),
    )


def _digest(step: Step, ticket: Ticket, current: Article) -> list[object]:
    limit = step.app.config.staff.digest_articles
    if not limit:
        return []
    query = (
        select(Article)
        .where(
            Article.ticket_id == ticket.id, Article.id != current.id, Article.internal.is_(False)
        )
        .order_by(Article.id.desc())
        .limit(limit)
    )
    zone = ticket_zone(step.app, ticket)
    return [
        {
            "author": a.from_name or a.from_address,
            "at": a.created_at.astimezone(zone).isoformat(timespec="minutes"),
            "direction": a.direction,
            "text": excerpt(a.text_body, max_lines=8, max_chars=600),
        }
        for a in reversed(step.session.scalars(query).all())
    ]
