"""Who wrote a message, as far as the message can prove it (docs/architecture.md,
invariant 8).

Staff: a staff address with a reply token that names it, or with the trusted MTA's
DKIM/DMARC result for its domain. A token presented by anyone it does not name, or past its
expiry, is refused: the sender is told why and nothing else happens.

Customers: the From address is a claim. When the trusted MTA's results contradict it (DMARC
failed for the From domain, or only another domain authenticated), or the sender has never
been on the ticket, the mail may join the conversation but acts on nothing.

Runs inside the caller's transaction, like the rest of apply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, select

from mailbridge.app import App, Step
from mailbridge.core.authres import contradicts, proves_author, trusted_results
from mailbridge.core.humanize import excerpt
from mailbridge.core.message import Address, ParsedMessage
from mailbridge.core.staff import (
    TEAM,
    AddressToken,
    TokenCheck,
    check_token,
    find_token,
    is_staff_address,
    reply_address,
)
from mailbridge.core.states import InboundState, MailKind
from mailbridge.db.models import InboundMessage, Outbox, Ticket
from mailbridge.outbound.queue import Mail, Queued, queue_mail, ticket_context
from mailbridge.tickets.events import Applied, add_event
from mailbridge.tickets.merge import live_ticket_by_number

log = logging.getLogger(__name__)

REFUSAL_KIND: Final = "staff_refused"
REFUSALS_PER_HOUR = 1  # mails telling senders on one ticket that their token was refused


@dataclass(frozen=True, slots=True)
class StaffClaim:
    """A message whose sender is a staff address (or that carries a reply token), and what
    proves it: None when nothing does; `refusal` says why a token it carried was refused."""

    address: str
    proof: str | None  # "token" | "dkim" | "dmarc" | None
    token: AddressToken | None  # the token, when one was presented
    refusal: str | None = None


def staff_claim(app: App, parsed: ParsedMessage, now: datetime) -> StaffClaim | None:
    """None for a customer's mail; else the staff claim and which proof holds.

    A token counts only for the staff address it was issued to (or, for the team address,
    a listed staff member). A customer who writes to a token address alone gets the
    refusal too; one who also wrote to the support address is a customer as usual.
    """
    staff = app.config.staff
    sender = parsed.from_.address if parsed.from_ else ""
    if not sender or sender in app.identity.own_addresses or parsed.sender_header != "from":
        return None  # staff are known by From alone, never by a header standing in for it
    staff_sender = is_staff_address(sender, staff.addresses, staff.domains)
    found = find_token(recipients(parsed), app.identity.own_addresses)
    if found is not None and (staff_sender or not _wrote_to_us_plainly(app, parsed)):
        check = check_token(app.reply_secret, found, sender, staff.addresses, now)
        if check.refusal is None and not staff_sender:
            check = TokenCheck(None, f"{sender} is not a staff address")
        if check.refusal is not None:
            return StaffClaim(sender, None, found, check.refusal)
        return StaffClaim(sender, "token", found)
    if not staff_sender:
        return None
    results = trusted_results(
        parsed.headers.get("authentication-results", ()), staff.trusted_authserv_id
    )
    return StaffClaim(sender, proves_author(results, sender.rpartition("@")[2]), None)


def recipients(parsed: ParsedMessage) -> list[str]:
    """Where the mail was addressed: To, Cc, and the delivery headers that name the
    address it reached (a token address may be in those alone, as with a Bcc)."""
    recipients = [a.address for a in (*parsed.to, *parsed.cc)]
    for header in ("delivered-to", "x-original-to"):
        recipients.extend(v.strip().strip("<>") for v in parsed.headers.get(header, ()))
    return recipients


def _wrote_to_us_plainly(app: App, parsed: ParsedMessage) -> bool:
    return any(a.address in app.identity.own_addresses for a in (*parsed.to, *parsed.cc))


def token_address(app: App, ticket: Ticket, audience: str, now: datetime) -> str:
    """The Reply-To of a mail to staff about `ticket`: its token names `audience` (a staff
    address, or TEAM for the team address) and lasts `staff.token_lifetime`."""
    mailbox = app.config.mailbox_named(ticket.mailbox)
    return reply_address(
        mailbox.address,
        ticket.number or 0,
        app.reply_secret,
        audience=audience,
        expires=now + app.config.staff.token_lifetime,
    )


def answer_staff_member(
    step: Step,
    ticket: Ticket,
    parsed: ParsedMessage,
    address: str,
    mail: StaffAnswer,
) -> Queued:
    """A mail to the staff member at `address`, in answer to their mail `parsed` (threaded
    to it, to their name as they wrote it), with a reply token for them alone unless
    `mail.token` is False (a sender nothing proves gets none)."""
    return queue_mail(
        step,
        Mail(
            kind=mail.kind,
            ticket=ticket,
            template=mail.template,
            context=mail.context,
            to=[Address(parsed.from_.name if parsed.from_ else "", address)],
            language=mail.language,
            unique=mail.unique,
            in_reply_to=parsed.message_id,
            references=[*parsed.references, *([parsed.message_id] if parsed.message_id else [])],
            reply_to=(
                [Address("", token_address(step.app, ticket, address, step.now))]
                if mail.token
                else []
            ),
            article_id=mail.article_id,
        ),
    )


@dataclass(frozen=True, slots=True)
class StaffAnswer:
    """What `answer_staff_member` sends: the kind, template and context of the mail."""

    kind: MailKind
    template: str
    context: dict[str, object]
    language: str
    unique: str  # the start of its Message-ID
    token: bool = True
    article_id: int | None = None  # the newest article it shows (core/collision.py)


def audience_of(app: App, target: str) -> str:
    """Who may use the token of a mail sent to `target`."""
    team = app.config.staff.team_address
    return TEAM if team and target.lower() == team.lower() else target.lower()


def note_unproven(step: Step, ticket: Ticket, claim: StaffClaim) -> None:
    """A staff address without proof: handled as customer mail, and said so loudly."""
    log.warning(
        "ticket #%s: mail claims to be from staff address %s but carries no proof "
        "(reply token or trusted Authentication-Results); handled as customer mail",
        ticket.number,
        claim.address,
    )
    add_event(
        step,
        ticket,
        "staff_unproven",
        address=claim.address,
        reason="no valid reply token and no trusted authentication result",
    )


def refuse_token(
    step: Step,
    inbound: InboundMessage,
    parsed: ParsedMessage,
    claim: StaffClaim,
) -> Applied:
    """A token its sender may not use: the ticket records the attempt, the sender is told
    why (at most REFUSALS_PER_HOUR mails per ticket, so forged senders cannot turn this into
    a mail cannon), and nothing else happens."""
    assert claim.token is not None and claim.refusal is not None
    ticket = live_ticket_by_number(step.session, claim.token.ticket_number)
    log.warning(
        "message %d: reply token for ticket #%d refused for %s: %s",
        inbound.id,
        claim.token.ticket_number,
        claim.address,
        claim.refusal,
    )
    if ticket is None:
        return Applied(
            InboundState.IGNORED, "staff_refused", reason=f"token refused: {claim.refusal}"
        )
    outbox_id = None
    if _recent_refusals(step, ticket) < REFUSALS_PER_HOUR:
        outbox_id = _tell_refused(step, ticket, parsed, claim).id
    add_event(
        step,
        ticket,
        "staff_token_refused",
        by=claim.address,
        reason=claim.refusal,
        inbound_message_id=inbound.id,
        outbox_id=outbox_id,
    )
    return Applied.to(ticket, "staff_refused", reason=f"token refused: {claim.refusal}")


def _recent_refusals(step: Step, ticket: Ticket) -> int:
    query = select(func.count(Outbox.id)).where(
        Outbox.ticket_id == ticket.id,
        Outbox.kind == REFUSAL_KIND,
        Outbox.created_at >= step.now - timedelta(hours=1),
    )
    return step.session.scalar(query) or 0


def _tell_refused(
    step: Step,
    ticket: Ticket,
    parsed: ParsedMessage,
    claim: StaffClaim,
) -> Queued:
    language = step.app.config.templates.language
    context = ticket_context(step.app, ticket, language)
    context["errors"] = [claim.refusal]
    context["event"] = "token_refused"
    context["excerpt"] = excerpt(parsed.reply_text or parsed.text, max_lines=20, max_chars=2000)
    answer = StaffAnswer(
        REFUSAL_KIND, "staff_command_error", context, language, f"staff-refused.{ticket.id}"
    )
    # To the bare address: the name is the sender's claim, and nothing proved it.
    return answer_staff_member(
        step, ticket, replace(parsed, from_=None), claim.address, replace(answer, token=False)
    )


# --- customers ------------------------------------------------------------------------------


def from_contradicted(app: App, parsed: ParsedMessage) -> bool:
    """Does the trusted MTA say the From domain did not send this mail?"""
    sender = parsed.from_.address if parsed.from_ else ""
    results = trusted_results(
        parsed.headers.get("authentication-results", ()), app.config.staff.trusted_authserv_id
    )
    return contradicts(results, sender.rpartition("@")[2])


def sender_unverified(app: App, parsed: ParsedMessage, participants: frozenset[str]) -> str:
    """Why the sender of a customer mail threaded into a ticket may not act on it ("" when
    they may): they were never on the ticket, or the trusted MTA contradicts their From."""
    sender = parsed.from_.address if parsed.from_ else ""
    if not sender:
        return "no sender address"
    if from_contradicted(app, parsed):
        return f"the trusted MTA's results contradict the From domain of {sender}"
    if sender not in participants:
        return f"{sender} has not written on this ticket before"
    return ""
