"""Queueing a mail about no ticket, to one staff member: the answer to their query by
mail (`#mine`, `#show 1042`, `#away`…). Like outbound.queue.queue_mail without the
ticket's tag, header and row link; the same Auto-Submitted table and X-Loop."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mailbridge.app import Step
from mailbridge.core.clip import clip_context
from mailbridge.core.compose import Outgoing, build_message, make_message_id
from mailbridge.core.message import Address
from mailbridge.core.states import MailKind
from mailbridge.db.models import Outbox
from mailbridge.outbound.queue import AUTO_SUBMITTED, add_to_outbox


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


def queue_personal_mail(step: Step, mail: PersonalMail) -> Outbox:
    """Render the mail's template and add it to the outbox at the step's moment."""
    app, now = step.app, step.now
    rendered = app.templates.render(
        mail.template, clip_context(mail.context, mail.language), mail.language
    )
    sender = app.sender
    message_id = make_message_id(app.message_id_domain, f"{mail.unique}.{secrets.token_hex(6)}")
    raw = build_message(
        Outgoing(
            from_=sender,
            to=(mail.to,),
            cc=(),
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
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
    return add_to_outbox(step, mail.kind, message_id, raw, [mail.to.address], ticket_id=None)
