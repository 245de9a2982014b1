"""Queueing a mail about no ticket, to staff: the answer to a query by mail (`#mine`,
`#show 1042`, `#away`…), the daily digest, the weekly report. Like outbound.queue.queue_mail
without the ticket's tag, header and row link; the same Auto-Submitted table and X-Loop."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mailbridge.app import Step
from mailbridge.core.clip import clip_context
from mailbridge.core.compose import Outgoing, build_message, make_message_id
from mailbridge.core.message import Address
from mailbridge.core.states import MailKind
from mailbridge.outbound.queue import AUTO_SUBMITTED, Queued, Sealed, add_to_outbox


@dataclass(frozen=True, slots=True)
class PersonalMail:
    kind: MailKind
    template: str
    context: Mapping[str, object]
    to: Address
    language: str
    unique: str  # the Message-ID starts with it
    reply_to: Address  # where another query goes: the support address they wrote to
    in_reply_to: str | None = None
    references: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class ComposedMail:
    """A mail whose words were made in code rather than by a template (the weekly report,
    core/report_html.py): its subject, text and HTML as they go out."""

    kind: MailKind
    to: tuple[Address, ...]
    subject: str
    text: str
    html: str | None
    unique: str  # the Message-ID starts with it
    reply_to: Address
    in_reply_to: str | None = None
    references: Sequence[str] = ()


def queue_personal_mail(step: Step, mail: PersonalMail) -> Queued:
    """Render the mail's template and add it to the outbox at the step's moment."""
    rendered = step.app.templates.render(
        mail.template, clip_context(mail.context, mail.language), mail.language
    )
    return queue_composed_mail(
        step,
        ComposedMail(
            kind=mail.kind,
            to=(mail.to,),
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            unique=mail.unique,
            reply_to=mail.reply_to,
            in_reply_to=mail.in_reply_to,
            references=mail.references,
        ),
    )


def queue_composed_mail(step: Step, mail: ComposedMail) -> Queued:
    """Add a finished mail to the outbox at the step's moment."""
    app, now = step.app, step.now
    sender = app.sender
    message_id = make_message_id(app.message_id_domain, f"{mail.unique}.{secrets.token_hex(6)}")
    raw = build_message(
        Outgoing(
            from_=sender,
            to=mail.to,
            cc=(),
            subject=mail.subject,
            text=mail.text,
            html=mail.html,
            message_id=message_id,
            in_reply_to=mail.in_reply_to,
            references=tuple(mail.references),
            auto_submitted=AUTO_SUBMITTED[mail.kind],
            reply_to=(mail.reply_to,),
            attachments=(),
            extra_headers=(("X-Loop", app.identity.loop_token),),
            date=now,
        )
    )
    recipients = [address.address for address in mail.to]
    return add_to_outbox(step, Sealed(mail.kind, message_id, raw, recipients), ticket_id=None)
