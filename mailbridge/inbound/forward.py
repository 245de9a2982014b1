"""Forward on behalf: a proven staff member opens a ticket for a customer.

A proven staff member (inbound/identity.py) writes to a support mailbox about no ticket we
know, and the mail either forwards a customer's mail (core/forward.py: inline, or attached
as `message/rfc822`) or names the customer with `#requester ADDRESS` on its top lines. The
ticket is then the customer's: its requester is the original sender (or the #requester
address, which overrides the detection), its subject, first article (author_kind customer,
from the original sender) and attachments the original's. Routing rules see the original as
if the customer had written; the staff member's own lines, commands taken off, become an
internal note; the staff member is the assignee unless a rule or `#assign` says otherwise;
and the customer is acknowledged as for any new ticket unless `#noack` is given.

`#requester` without a forward opens the ticket with the staff member's own text as its
first message, relayed to the customer with the `staff_reply` template: the ticket then
waits on the customer and nothing is acknowledged (the customer wrote nothing). With
`#note` the text stays an internal note and nothing is sent.

Of the other commands, those that set up a ticket (#assign, #priority, #queue, #tag,
#untag, #cc, #note, #noack) apply; those that finish, merge or answer one (#close,
#resolve, #template, #merge, #split, #send, #drop, #spam, #notspam) are refused. A
refusal, or a requester that is one of our own addresses or a staff address, opens nothing
on anyone's behalf: the mail
becomes a ticket as the staff member's own, and the staff member is told why. An unproven
sender never gets here (docs/architecture.md, invariant 8).

A forward of mail that is already on a ticket (the customer also wrote to support, or a
second staff member forwards it too) opens no second ticket: the staff member's lines join
the ticket that holds it as an internal note (`ticket_holding`, `join`).

Runs inside the caller's transaction, like the rest of apply.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import select

from mailbridge.app import Step
from mailbridge.core.forward import (
    Forwarded,
    find_forward,
    original_message,
    same_start,
    text_start,
    ticket_subject,
)
from mailbridge.core.message import Address, ParsedMessage, ParseLimits, Verdict
from mailbridge.core.rules import Decision
from mailbridge.core.staff import (
    StaffMessage,
    argument_problems,
    is_staff_address,
    parse_commands,
    requester_address,
    strip_signature,
)
from mailbridge.db import queries
from mailbridge.db.models import Article, InboundMessage, Ticket
from mailbridge.inbound import staff
from mailbridge.inbound.acknowledge import maybe_acknowledge
from mailbridge.inbound.identity import StaffClaim
from mailbridge.inbound.staff_notification import notify_staff
from mailbridge.tickets import merge, participants
from mailbridge.tickets.events import Applied, add_event
from mailbridge.tickets.requester import unusable_requester

log = logging.getLogger(__name__)

# Commands that make no sense on a ticket being opened (they finish, merge or answer one).
REFUSED_COMMANDS = (
    "close",
    "resolve",
    "template",
    "merge",
    "split",
    "send",
    "drop",
    "spam",
    "notspam",
    "faq",
)
REQUESTER_ONLY = "#requester"
FORWARD_REFUSED = "forward_refused"  # the event, and the refusal mail's wording
ATTACHED_PARTS = 200  # MIME parts of an attached original read
ATTACHED_DEPTH = 8  # its levels of multipart and attached messages
# How far back, and among how many of the customer's mails, a forwarded copy is looked for.
SAME_MAIL_WINDOW = timedelta(days=30)
SAME_MAIL_CANDIDATES = 20


@dataclass(frozen=True, slots=True)
class OnBehalf:
    """A ticket a proven staff member opens for a customer, or why it is not opened so.

    `opening` is what apply opens the ticket from: the original (a forward), a message
    from the requester holding the staff member's text (#requester alone), or the staff
    member's own mail (`problems`: refused)."""

    claim: StaffClaim
    outer: ParsedMessage
    opening: ParsedMessage
    message: StaffMessage  # the staff member's own lines: commands and text
    how: str  # core.forward's form, or "#requester"
    forwarded: Forwarded | None
    problems: tuple[str, ...] = ()

    @property
    def customer_wrote(self) -> bool:
        """Does the first article come from the customer (a forward, not refused)?"""
        return self.forwarded is not None and not self.problems

    @property
    def refused(self) -> bool:
        return bool(self.problems)


def on_behalf(step: Step, parsed: ParsedMessage, claim: StaffClaim) -> OnBehalf | None:
    """What the proven staff member's mail about no ticket opens: None when it neither
    forwards a customer's mail nor names one with #requester (a ticket like anyone's)."""
    found = find_forward(parsed, _limits(step))
    own = found.own_text if found is not None else (parsed.reply_text or parsed.text)
    patterns = [re.compile(p, re.MULTILINE) for p in step.app.config.staff.signature_patterns]
    message = parse_commands(strip_signature(own, patterns))
    named = message.argument("requester")
    if found is None and named is None and not _requester_errors(message):
        return None
    requester = requester_address(named) if named is not None else None
    if requester is None and found is not None:
        requester = found.sender
    how = found.form if found is not None and named is None else REQUESTER_ONLY
    problems = _problems(step, message, requester, found)
    if problems or requester is None:
        return OnBehalf(claim, parsed, parsed, message, how, found, tuple(problems))
    if found is not None:
        original = original_message(found)
        opening = replace(
            original,
            subject=ticket_subject(found, parsed.subject),
            reply_to=(requester,) if named is not None else (),
        )
    else:
        opening = replace(
            parsed,
            from_=requester,
            reply_to=(),
            to=(),
            cc=(),
            text=message.text,
            reply_text=message.text,
            headers={},
            attachments=(),
        )
    return OnBehalf(claim, parsed, opening, message, how, found)


def _limits(step: Step) -> ParseLimits:
    """An attached original is parsed here, outside the parse worker's budget: within the
    configured sizes, and with far fewer parts and levels than a whole mail may have."""
    return replace(step.app.parse_limits, max_parts=ATTACHED_PARTS, max_depth=ATTACHED_DEPTH)


def _requester_errors(message: StaffMessage) -> list[str]:
    return [e for e in message.errors if e.lower().startswith("#requester")]


def _problems(
    step: Step, message: StaffMessage, requester: Address | None, found: Forwarded | None
) -> list[str]:
    """Why the mail opens nothing on anyone's behalf ([] when it may)."""
    config = step.app.config.staff
    problems = [*message.errors, *argument_problems(message, config.addresses, ())]
    for name in REFUSED_COMMANDS:
        if message.has(name):
            problems.append(f"#{name}: not for a ticket being opened for a customer")
    if requester is not None:
        why = unusable_requester(step.app, requester)
        if not why and is_staff_address(requester.address, config.addresses, config.domains):
            why = f"{requester.address} is a staff address, not a customer"
        if why:
            problems.append(f"requester {requester.address}: {why}")
        problems += participants.command_problems(step.app, requester.address, message)
    if found is None and not problems and not message.text:
        problems.append(
            "nothing for the customer: write your text below #requester ADDRESS "
            "(or add #note to record it only)"
        )
    return problems


# --- a forward of mail a ticket already holds -------------------------------------------------


def ticket_holding(step: Step, behalf: OnBehalf) -> Ticket | None:
    """The live ticket that already holds the forwarded original: by its Message-ID (an
    attached original keeps one), else one of the sender's recent mails to us whose text
    starts the same (core.forward.text_start). None when `#requester` names the customer:
    the staff member said whose ticket to open."""
    found = behalf.forwarded
    if not behalf.customer_wrote or found is None or behalf.message.has("requester"):
        return None
    message_id = behalf.opening.message_id
    if message_id:
        by_id = queries.ticket_ids_for_message_ids(step.session, [message_id])
        if by_id:
            return merge.live_ticket(step.session, step.session.get(Ticket, by_id[message_id]))
    start = text_start(found.text)
    if not start:
        return None
    query = (
        select(Article.ticket_id, Article.text_body)
        .join(Ticket, Ticket.id == Article.ticket_id)
        .where(
            Ticket.requester_address == found.sender.address,
            Article.direction == "in",
            Article.from_address == found.sender.address,
            Article.created_at >= step.now - SAME_MAIL_WINDOW,
        )
        .order_by(Article.id.desc())
        .limit(SAME_MAIL_CANDIDATES)
    )
    for ticket_id, text in step.session.execute(query):
        if same_start(text_start(text), start):
            return merge.live_ticket(step.session, step.session.get(Ticket, ticket_id))
    return None


def join(step: Step, ticket: Ticket, inbound: InboundMessage, behalf: OnBehalf) -> Applied:
    """The forwarded mail is already on `ticket`: the staff member's lines join it as an
    internal note, their set-up commands apply, they become the assignee if nobody is; the
    customer hears nothing (they were acknowledged when their mail came in)."""
    claim, message = behalf.claim, behalf.message
    if ticket.assignee is None:
        ticket.assignee = claim.address
    changes = staff.apply_commands(step, ticket, message, claim)
    note = None
    if message.text:
        note = staff.note_article(step, ticket, inbound, behalf.outer, claim.address, message.text)
    ticket.updated_at = step.now
    add_event(
        step,
        ticket,
        "forward_joined",
        by=claim.address,
        via="mail",
        proof=claim.proof,
        how=behalf.how,
        original_sender=behalf.opening.from_.address if behalf.opening.from_ else None,
        note_article_id=note.id if note is not None else None,
        message_id=behalf.outer.message_id,
        changes=changes,
    )
    return Applied.to(
        ticket, "followup", reason=f"forward of mail already on ticket #{ticket.number}"
    )


# --- after apply opened the ticket -----------------------------------------------------------


def settle(
    step: Step,
    ticket: Ticket,
    article: Article | None,
    inbound: InboundMessage,
    behalf: OnBehalf,
    verdict: Verdict,
    routed: Decision,
) -> Applied:
    """Everything the ticket apply just opened needs beyond a customer's: the commands, the
    assignee, the note or the first message, the event, the acknowledgement."""
    if behalf.refused:
        return _refused(step, ticket, article, inbound, behalf)
    claim, message = behalf.claim, behalf.message
    if routed.actions.assignee is None:
        ticket.assignee = claim.address
    changes = staff.apply_commands(step, ticket, message, claim)
    note = relayed = None
    if behalf.customer_wrote and message.text:
        note = staff.note_article(step, ticket, inbound, behalf.outer, claim.address, message.text)
    elif not behalf.customer_wrote:
        note, relayed = staff.write_to_customer(step, ticket, inbound, behalf.outer, message, claim)
    _record(step, ticket, article, note, behalf, changes, relayed)
    acknowledged = False
    if article is not None and message.has("noack"):
        add_event(
            step, ticket, "ack_suppressed", check="noack", reason=f"#noack by {claim.address}"
        )
    elif article is not None:
        acknowledged = maybe_acknowledge(
            step, ticket, article, inbound, behalf.opening, verdict, routed
        )
        notify_staff(step, ticket, article, behalf.opening, "new")
    return Applied.to(
        ticket,
        "created",
        acknowledged=acknowledged,
        reason=f"opened by {claim.address} for {ticket.requester_address} ({behalf.how})",
    )


def _record(
    step: Step,
    ticket: Ticket,
    article: Article | None,
    note: Article | None,
    behalf: OnBehalf,
    changes: dict[str, object],
    relayed: int | None,
) -> None:
    found = behalf.forwarded
    add_event(
        step,
        ticket,
        "forwarded_on_behalf",
        by=behalf.claim.address,
        via="mail",
        proof=behalf.claim.proof,
        how=behalf.how,
        original_sender=found.sender.address if found is not None else None,
        requester=ticket.requester_address,
        assignee=ticket.assignee,
        article_id=article.id if article is not None else None,
        note_article_id=note.id if note is not None else None,
        outbox_id=relayed,
        message_id=behalf.outer.message_id,
        changes=changes,
    )
    log.info(
        "ticket #%s opened by %s for %s (%s)",
        ticket.number,
        behalf.claim.address,
        ticket.requester_address,
        behalf.how,
    )


def _refused(
    step: Step,
    ticket: Ticket,
    article: Article | None,
    inbound: InboundMessage,
    behalf: OnBehalf,
) -> Applied:
    """The mail is a ticket as the staff member's own; they are told why it was not opened
    for the customer, and the team hears of it as of any new ticket."""
    claim, parsed = behalf.claim, behalf.outer
    problems = list(behalf.problems)
    row = staff.tell_what_was_wrong(step, ticket, parsed, claim, problems, event=FORWARD_REFUSED)
    add_event(
        step,
        ticket,
        FORWARD_REFUSED,
        by=claim.address,
        via="mail",
        how=behalf.how,
        errors=list(behalf.problems),
        outbox_id=row.id,
    )
    log.warning(
        "ticket #%s: %s's mail opened nothing on a customer's behalf: %s",
        ticket.number,
        claim.address,
        "; ".join(behalf.problems),
    )
    if article is not None:
        notify_staff(step, ticket, article, parsed, "new")
    return Applied.to(ticket, "created", reason="on behalf refused: " + "; ".join(behalf.problems))
