"""Queueing mail: an outbox row holding what the mail is made of, rendered when sent.

Called inside the transaction of the change that causes the mail, so the mail exists
exactly when the change does.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from mailbridge.app import App, Step
from mailbridge.core.clip import clip_context
from mailbridge.core.compose import Outgoing, make_message_id
from mailbridge.core.correlate import format_tag
from mailbridge.core.humanize import format_deadline
from mailbridge.core.message import Address, Attachment
from mailbridge.core.sender import answerable
from mailbridge.core.states import MailKind, OutboxState
from mailbridge.db import queries
from mailbridge.db.models import Outbox, Ticket
from mailbridge.outbound.render import compose, make_recipe, recipe_attachments

# RFC 3834 `Auto-Submitted` of every kind of mail we send, so no caller can forget it:
# "auto-replied" answers a message, "auto-generated" is sent of our own accord, and only
# a person's words relayed to the customer (a staff reply) go without.
AUTO_SUBMITTED: Mapping[MailKind, str | None] = {
    "ack": "auto-replied",  # to the customer's mail
    "staff_error": "auto-replied",  # to the staff member's mail with a bad command
    "staff_refused": "auto-replied",  # to mail that used a reply token it may not use
    "collision": "auto-replied",  # to the staff member's reply held or warned about
    "query": "auto-replied",  # to the staff member's #mine, #show, #away, …
    "notification": "auto-generated",
    "sla_warning": "auto-generated",
    "escalation": "auto-generated",
    "closed": "auto-generated",  # a staff #close, not an answer to the customer's mail
    "merged": "auto-generated",  # the customer's ticket went into another
    "reminder": "auto-generated",  # waiting on the customer: a nudge (tickets/waiting.py)
    "auto_closed": "auto-generated",  # … and the close when they stayed silent
    "digest": "auto-generated",  # a staff member's daily queue (inbound/digest.py)
    "report": "auto-generated",  # the weekly report (reports/weekly.py)
    "reply": None,  # a staff member's answer, relayed
}

# The mails a customer gets: they go out under the brand of the ticket's mailbox (its From,
# envelope sender, Message-ID domain and X-Loop) and carry its signature. The rest are for
# staff and go out as [smtp] says.
TO_CUSTOMER: frozenset[MailKind] = frozenset(
    {"ack", "reply", "closed", "merged", "reminder", "auto_closed"}
)


def ticket_zone(app: App, ticket: Ticket) -> ZoneInfo:
    """The time zone of the ticket's calendar: its deadlines are counted there, so the
    times its mails show are too."""
    return app.config.ticket_calendar(ticket.mailbox, ticket.queue).zone


def ticket_context(app: App, ticket: Ticket, language: str) -> dict[str, object]:
    """The plain values every template may use; documented in adapters/template_context.py."""
    zone = ticket_zone(app, ticket)
    due = ticket.first_response_due_at
    brand = app.brand(ticket.mailbox)
    return {
        "ticket_number": ticket.number,
        "ticket_tag": format_tag(app.config.tickets.tag_prefix, ticket.number or 0),
        "subject": ticket.subject,
        "requester_name": ticket.requester_name,
        "requester_address": ticket.requester_address,
        "no_requester": not answerable(ticket.requester_address),
        "promised_reply": format_deadline(due, language, zone) if due else "",
        "due_at_iso": due.astimezone(zone).isoformat(timespec="minutes") if due else "",
        "queue": ticket.queue,
        "priority": ticket.priority,
        "excerpt": "",
        "support_address": brand.sender.address,
        "company_name": brand.company,
        "signature": "",  # rendered in by queue_mail for a mail to the customer
        "escalation_level": ticket.escalation_level,
        "overdue_by": "",
        "staff_name": "",
        "reply_text": "",
        "links": {},
        "event": "",
        "digest": [],
        "attachments": [],
        "errors": [],
        "unread": [],
        "rating_good_url": "",  # set on the mails that finish a ticket (tickets/rating.py)
        "rating_bad_url": "",
    }


@dataclass(frozen=True, slots=True)
class Mail:
    """One mail to queue: what it is (`kind`), about which ticket, the template and its
    values, who gets it, and how it threads."""

    kind: MailKind  # decides the Auto-Submitted header (AUTO_SUBMITTED)
    ticket: Ticket
    template: str
    context: Mapping[str, object]
    to: Sequence[Address]
    language: str
    unique: str  # the Message-ID starts with it
    in_reply_to: str | None = None
    references: Sequence[str] = ()
    reply_to: Sequence[Address] = ()  # default: the address the ticket came in through
    attachments: Sequence[Attachment] = ()
    # True: the attachments are rows of the ticket's articles (AttachmentRecord), and the
    # mail is rendered when sent, reading their bytes then (outbound/render.py).
    attachments_stored: bool = False
    cc: Sequence[Address] = ()  # the Cc header; envelope recipients too, after `to`
    article_id: int | None = None  # the article the mail shows staff (core/collision.py)


def queue_mail(step: Step, mail: Mail) -> Queued:
    """Add the mail to the outbox at the step's moment, to be rendered when it is sent;
    its row, written at once or held by `queries.written_later`.

    A random part keeps ids unique across reinstalls (receivers drop repeated ids); the id
    and the Date are fixed here, so every retry sends the same Message-ID. Answers go to the
    address the ticket came in through (`reply_to` overrides), whatever smtp.from says.
    `kind` decides the Auto-Submitted header (AUTO_SUBMITTED). The row holds a recipe
    (outbound/render.py) and the template is rendered at send time; so is a mail whose
    attachments are stored with the ticket (`attachments_stored`), its recipe naming them.
    A mail carrying attachments stored nowhere else (a staff answer's files) is rendered
    now, so that its bytes do not depend on a stored mail that a purge may remove.
    """
    return add_to_outbox(
        step, _sealed(step, mail), ticket_id=mail.ticket.id, article_id=mail.article_id
    )


def _sealed(step: Step, mail: Mail) -> Sealed:
    app, ticket, now = step.app, mail.ticket, step.now
    to_customer = mail.kind in TO_CUSTOMER
    brand = app.brand(ticket.mailbox) if to_customer else app.house
    sender = brand.sender
    reply_to = mail.reply_to or [
        Address(sender.name, app.config.mailbox_named(ticket.mailbox).address)
    ]
    message_id = make_message_id(brand.message_id_domain, f"{mail.unique}.{secrets.token_hex(6)}")
    tag = format_tag(app.config.tickets.tag_prefix, ticket.number or 0)
    headers = Outgoing(
        from_=sender,
        to=tuple(mail.to),
        cc=tuple(mail.cc),
        subject="",
        text="",
        html=None,
        message_id=message_id,
        in_reply_to=mail.in_reply_to,
        references=tuple(mail.references),
        auto_submitted=AUTO_SUBMITTED[mail.kind],
        reply_to=tuple(reply_to),
        extra_headers=(
            ("X-Loop", brand.loop_token),
            ("X-Mailbridge-Ticket", str(ticket.number)),
        ),
        date=now,
    )
    # Values from mail can be any size: shortened here, with a mark, for every mail we send.
    recipe = make_recipe(
        template=mail.template,
        language=mail.language,
        mailbox=ticket.mailbox,
        signed=to_customer,
        context=clip_context(mail.context, mail.language),
        headers=headers,
        tag=tag,
    )
    if mail.attachments_stored and mail.attachments:
        recipe["attachments"] = recipe_attachments(mail.attachments)
    raw = b""
    rendered_now = bool(mail.attachments) and not mail.attachments_stored
    if rendered_now:
        raw = compose(app, recipe, message_id, attachments=tuple(mail.attachments))
    recipients = list(dict.fromkeys(a.address for a in (*mail.to, *mail.cc)))
    return Sealed(
        mail.kind,
        message_id,
        raw,
        recipients,
        brand.bounce_address,
        recipe=None if rendered_now else recipe,
    )


@dataclass(frozen=True, slots=True)
class Sealed:
    """A finished mail: its bytes, and the envelope it goes out in."""

    kind: MailKind
    message_id: str
    raw: bytes
    recipients: list[str]
    # Where its bounces go (outbound/send.py makes it one per mail); None: the house's,
    # [smtp] bounce_address, else the [smtp] from address.
    envelope_from: str | None = None
    # Set: `raw` is empty and the mail is rendered from this when sent (outbound/render.py).
    recipe: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Queued:
    """A mail in the outbox, as the step that queued it knows it."""

    id: int  # its outbox row's
    message_id: str


def add_to_outbox(
    step: Step, mail: Sealed, *, ticket_id: int | None, article_id: int | None = None
) -> Queued:
    """The outbox row of a finished mail, pending from the step's moment, held or written
    as its values (queries.insert_values: nothing in the step reads the row back); its id
    known so that the same step's events can name it."""
    values = _outbox_values(step, mail, ticket_id, article_id)
    return Queued(queries.insert_values(step.session, Outbox, values), mail.message_id)


def _outbox_values(
    step: Step, mail: Sealed, ticket_id: int | None, article_id: int | None
) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "article_id": article_id,
        "kind": mail.kind,
        "envelope_from": mail.envelope_from or step.app.house.bounce_address,
        "envelope_to": mail.recipients,
        "message_id": mail.message_id,
        "raw": mail.raw,
        "recipe": mail.recipe,
        "state": OutboxState.PENDING,
        "attempts": 0,
        "next_attempt_at": step.now,
        "created_at": step.now,
    }
