"""Staff answers by mail: recorded on the ticket, their commands applied, relayed to the
customer.

A proven staff member's answer to a staff notification (inbound/staff_notification.py; see
docs/architecture.md, invariant 8) has its quote and signature removed, its `#commands`
applied, and its text relayed to the customer from the support address through the
`staff_reply` template, threaded into the customer's conversation. The customer never sees a
staff address, an internal note or a token. In observe mode, an answer sent straight from
the support account (found in its Sent folder) is recorded the same way, and nothing is sent.

Runs inside the caller's transaction, like the rest of apply.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbridge.app import App, Step
from mailbridge.core.correlate import thread_clues
from mailbridge.core.humanize import excerpt
from mailbridge.core.message import Address, ParsedMessage
from mailbridge.core.relay import first_name, relayed_attachments
from mailbridge.core.sender import answerable
from mailbridge.core.staff import (
    Command,
    StaffMessage,
    argument_problems,
    parse_commands,
    staff_member,
    strip_signature,
)
from mailbridge.core.states import InboundState, TicketStatus
from mailbridge.db import queries
from mailbridge.db.models import Article, InboundMessage, Outbox, Ticket
from mailbridge.inbound import collision
from mailbridge.inbound.acknowledge import acknowledge_late
from mailbridge.inbound.identity import StaffAnswer, StaffClaim, answer_staff_member
from mailbridge.outbound.queue import Mail, Queued, queue_mail, ticket_context
from mailbridge.tickets import (
    faq_drafts,
    merge,
    participants,
    requester,
    spam,
    split,
    tallies,
    waiting,
)
from mailbridge.tickets.deadlines import on_priority_or_queue_change, on_staff_reply
from mailbridge.tickets.events import Applied, add_event
from mailbridge.tickets.rating import rating_links
from mailbridge.tickets.staff_articles import StaffWords, add_staff_article

log = logging.getLogger(__name__)

CANNED_PREFIX = "canned_"
FAQ_DRAFT_REFUSED = "faq_draft_refused"  # the event, and the wording of the mail about it


# --- answers from staff ----------------------------------------------------------------------


def handle_staff_mail(
    step: Step,
    inbound: InboundMessage,
    parsed: ParsedMessage,
    claim: StaffClaim,
) -> Applied | None:
    """Apply a proven staff member's answer; None when it answers no ticket we know."""
    ticket = _answered_ticket(step, parsed, claim)
    if ticket is None:
        return None
    patterns = [re.compile(p, re.MULTILINE) for p in step.app.config.staff.signature_patterns]
    message = parse_commands(strip_signature(parsed.reply_text or parsed.text, patterns))
    if not message.has("note") and (
        message.has("spam") or _answers_internal_mail(step.session, parsed)
    ):
        # Answering an escalation or a warning is talk among staff, and spam gets no
        # answer: never for the customer.
        message = replace(message, commands=(Command("note"), *message.commands))
    problems = _problems(step, ticket, parsed, claim, message)
    draft = None
    if not problems and message.has("send"):  # the held draft, replayed as it was
        draft, message, parsed = collision.draft_to_send(step, ticket, parsed, claim)
        problems = _problems(step, ticket, parsed, claim, message)
    if problems:
        _refuse(step, ticket, parsed, claim, problems)
        return Applied.to(ticket, "staff_refused", reason="; ".join(problems))
    if message.has("drop"):
        return collision.drop_draft(step, ticket, claim)
    found = collision.check(step, ticket, parsed, message)
    # #split first: the rest of the reply is the answer on the new ticket, where every
    # message the check found newer has moved too (tickets/split.py).
    ticket, message = split.apply_command(step, ticket, parsed, message, claim.address)
    if found.action == "hold":
        reply = collision.Reply(ticket, parsed, claim, message)
        return collision.hold(step, inbound, reply, found, draft)
    changes = apply_commands(step, ticket, message, claim)  # #requester first
    changes.update(spam.apply_command(step, ticket, message, claim.address, acknowledge_late))
    article = _record_article(step, ticket, inbound, parsed, claim, message)
    relayed = None
    if not message.has("note") and (message.text or message.argument("template")):
        relayed = _relay(step, ticket, article, parsed, message, claim)
        on_staff_reply(step, ticket, message.text)
    if message.has("close") or message.has("resolve"):
        status_from = ticket.status
        _finish(step, ticket, message, relayed is not None)
        if ticket.status != status_from:  # the event says so (a webhook announces it)
            changes["status"] = [status_from, ticket.status]
    add_event(
        step,
        ticket,
        "staff_note" if message.has("note") else "staff_reply",
        by=claim.address,
        proof=claim.proof,
        article_id=article.id,
        outbox_id=relayed.id if relayed else None,
        changes=changes,
    )
    _save_faq_draft(step, ticket, parsed, claim, message)
    reply = collision.Reply(ticket, parsed, claim, message)
    collision.settle(step, reply, found, article=article, draft=draft)
    ticket.updated_at = step.now
    merge.apply_command(step, ticket, message, claim.address)  # last: the reply moves too
    action = "staff_note" if message.has("note") else "staff_reply"
    return Applied.to(ticket, action, reason=f"proof: {claim.proof}")


def _problems(
    step: Step, ticket: Ticket, parsed: ParsedMessage, claim: StaffClaim, message: StaffMessage
) -> list[str]:
    """Everything that keeps a reply from being applied; empty when it may be."""
    problems = [
        *message.errors,
        *_argument_problems(step.app, message),
        *requester.command_problems(step.app, ticket, message),
        *participants.command_problems(step.app, ticket.requester_address, message),
        *merge.command_problems(step, ticket, message),
        *split.command_problems(step, ticket, parsed, message),
        *spam.command_problems(ticket, message),
        *collision.draft_problems(step, ticket, claim, message),
    ]
    if not problems and not message.text and not message.commands:
        problems.append("nothing to send: the reply has no text above the quoted message")
    return problems


def _save_faq_draft(
    step: Step, ticket: Ticket, parsed: ParsedMessage, claim: StaffClaim, message: StaffMessage
) -> None:
    """`#faq save "Title"`: the answer kept as a draft FAQ entry (tickets/faq_drafts.py).
    What kept it from being saved is told to the staff member like a refused command, but
    the answer has gone to the customer all the same."""
    problems = faq_drafts.save_from_reply(step, ticket, message, claim.address)
    if not problems:
        return
    row = tell_what_was_wrong(step, ticket, parsed, claim, problems, event=FAQ_DRAFT_REFUSED)
    add_event(step, ticket, FAQ_DRAFT_REFUSED, by=claim.address, errors=problems, outbox_id=row.id)
    log.warning(
        "ticket #%s: no FAQ draft saved in %s from %s's reply: %s",
        ticket.number,
        step.app.config.faq_drafts_dir,
        claim.address,
        "; ".join(problems),
    )


def _answered_ticket(step: Step, parsed: ParsedMessage, claim: StaffClaim) -> Ticket | None:
    """The ticket named by the token; else by a Message-ID we sent or the subject tag."""
    if claim.token is not None:
        return merge.live_ticket_by_number(step.session, claim.token.ticket_number)
    return _referenced_ticket(step, parsed)


def _referenced_ticket(step: Step, parsed: ParsedMessage) -> Ticket | None:
    """For mail from our own side (proven staff, our Sent folder) a Message-ID we know or
    the subject tag names the ticket; no participant check is needed."""
    clues = thread_clues(parsed, step.app.config.tickets.tag_prefix)
    by_id = queries.ticket_ids_for_message_ids(step.session, clues.message_ids)
    for message_id in clues.message_ids:
        if message_id in by_id:
            return merge.live_ticket(step.session, step.session.get(Ticket, by_id[message_id]))
    if clues.tag_number is not None:
        return merge.live_ticket_by_number(step.session, clues.tag_number)
    return None


INTERNAL_KINDS = ("escalation", "sla_warning")


def _answers_internal_mail(session: Session, parsed: ParsedMessage) -> bool:
    """Does the mail answer one of our escalations or warnings (sent to staff only)?"""
    ids = [m for m in (parsed.in_reply_to, *parsed.references) if m]
    if not ids:
        return False
    query = (
        select(Outbox.id)
        .where(Outbox.message_id.in_(ids), Outbox.kind.in_(INTERNAL_KINDS))
        .limit(1)
    )
    return session.scalar(query) is not None


def _argument_problems(app: App, message: StaffMessage) -> list[str]:
    """The assignee must be staff, the canned template must exist (core.staff)."""
    canned = {
        t.removeprefix(CANNED_PREFIX) for t in app.templates.names() if t.startswith(CANNED_PREFIX)
    }
    return argument_problems(message, app.config.staff.addresses, canned)


def _refuse(
    step: Step,
    ticket: Ticket,
    parsed: ParsedMessage,
    claim: StaffClaim,
    problems: list[str],
) -> None:
    """Nothing reaches the customer; the staff member is told what was wrong."""
    row = tell_what_was_wrong(step, ticket, parsed, claim, problems)
    add_event(
        step,
        ticket,
        "staff_commands_refused",
        by=claim.address,
        errors=problems,
        outbox_id=row.id,
    )
    log.warning(
        "ticket #%s: reply from %s refused: %s", ticket.number, claim.address, "; ".join(problems)
    )


def tell_what_was_wrong(
    step: Step,
    ticket: Ticket,
    parsed: ParsedMessage,
    claim: StaffClaim,
    problems: list[str],
    *,
    event: str = "",
) -> Queued:
    """The `staff_command_error` mail to the staff member whose mail was refused, in answer
    to it, with its text and a reply token for them alone; `event` picks the template's
    wording ("" for a reply's commands, "forward_refused" for a forward,
    "faq_draft_refused" for a draft not saved from an answer that went out)."""
    language = step.app.config.templates.language
    context = ticket_context(step.app, ticket, language)
    context["errors"] = problems
    if event:
        context["event"] = event
    context["excerpt"] = excerpt(parsed.reply_text or parsed.text, max_lines=20, max_chars=2000)
    unique = f"{event or 'staff-error'}.{ticket.id}"
    answer = StaffAnswer("staff_error", "staff_command_error", context, language, unique)
    return answer_staff_member(step, ticket, parsed, claim.address, answer)


def _record_article(
    step: Step,
    ticket: Ticket,
    inbound: InboundMessage,
    parsed: ParsedMessage,
    claim: StaffClaim,
    message: StaffMessage,
) -> Article:
    note = message.has("note")
    # The staff member's own Message-ID stays out of the customer's thread: the article
    # takes the id of the relayed mail instead (see _relay).
    return add_staff_article(
        step,
        ticket,
        inbound,
        parsed,
        StaffWords(
            address=claim.address,
            text=message.text,
            note=note,
            message_id=None,
            to=[] if note else [ticket.requester_address],
            cc=[],
        ),
    )


def apply_commands(
    step: Step,
    ticket: Ticket,
    message: StaffMessage,
    claim: StaffClaim,
) -> dict[str, object]:
    """The commands that set a ticket up (#requester first, #cc, #assign, #priority,
    #queue, #tag, #untag), on an answer or a forward; what changed, for the event."""
    changes: dict[str, object] = {}
    changes.update(requester.apply_command(step, ticket, message, claim.address))
    changes.update(participants.apply_commands(step, ticket, message, claim.address))
    assignee = message.argument("assign")
    if assignee is not None:
        ticket.assignee = (
            claim.address
            if assignee == "me"
            else staff_member(assignee, step.app.config.staff.addresses)
        )
        changes["assignee"] = ticket.assignee
    priority, queue = message.argument("priority"), message.argument("queue")
    if priority is not None and priority != ticket.priority:
        changes["priority"] = [ticket.priority, priority]
        ticket.priority = priority
    if queue is not None and queue != ticket.queue:
        changes["queue"] = [ticket.queue, queue]
        ticket.queue = queue
    if "priority" in changes or "queue" in changes:
        on_priority_or_queue_change(step, ticket)
    if added := queries.add_ticket_tags(step.session, ticket.id, message.tags("tag"), step.now):
        changes["tags_added"] = added
    if removed := queries.remove_ticket_tags(step.session, ticket.id, message.tags("untag")):
        changes["tags_removed"] = removed
    changes.update(waiting.apply_command(step, ticket, message, claim.address))
    return changes


def _relay(
    step: Step,
    ticket: Ticket,
    article: Article,
    parsed: ParsedMessage,
    message: StaffMessage,
    claim: StaffClaim,
) -> Queued:
    """The answer, to the customer, from the support address, in their thread."""
    language = ticket.language or step.app.brand(ticket.mailbox).language
    context = ticket_context(step.app, ticket, language)
    context["reply_text"] = message.text
    context["staff_name"] = first_name(parsed.from_.name if parsed.from_ else "")
    if message.has("close") or message.has("resolve"):  # the answer finishes the ticket
        context.update(rating_links(step.app, ticket, step.now))
    template = CANNED_PREFIX + name if (name := message.argument("template")) else "staff_reply"
    thread = queries.customer_thread(step.session, ticket.id)
    cc = participants.cc_of(step, ticket)  # as reply-all would
    article.cc = [a.address for a in cc]
    row = queue_mail(
        step,
        Mail(
            kind="reply",
            ticket=ticket,
            template=template,
            context=context,
            to=[Address(ticket.requester_name, ticket.requester_address)],
            cc=cc,
            language=language,
            unique=f"reply.{ticket.id}.{article.id}",
            in_reply_to=thread[-1] if thread else None,
            references=thread,
            attachments=relayed_attachments(parsed.attachments),
        ),
    )
    article.message_id = row.message_id
    return row


def _finish(step: Step, ticket: Ticket, message: StaffMessage, answered: bool) -> None:
    """#resolve or #close; a bare #close tells the customer with the `closed` template
    (when the ticket has someone to tell)."""
    ticket.status = TicketStatus.CLOSED if message.has("close") else TicketStatus.RESOLVED
    ticket.resolved_at = step.now
    ticket.next_escalation_at = None
    tallies.resolved(step, ticket)
    if message.has("close") and not answered and answerable(ticket.requester_address):
        language = ticket.language or step.app.brand(ticket.mailbox).language
        thread = queries.customer_thread(step.session, ticket.id)
        context = ticket_context(step.app, ticket, language)
        context.update(rating_links(step.app, ticket, step.now))
        queue_mail(
            step,
            Mail(
                kind="closed",
                ticket=ticket,
                template="closed",
                context=context,
                to=[Address(ticket.requester_name, ticket.requester_address)],
                cc=participants.cc_of(step, ticket),
                language=language,
                unique=f"closed.{ticket.id}",
                in_reply_to=thread[-1] if thread else None,
                references=thread,
            ),
        )


# --- observe mode: staff answer from the shared account ------------------------------------------


def handle_observed(step: Step, inbound: InboundMessage, parsed: ParsedMessage) -> Applied:
    """A message found in the support account's Sent folder: staff answered directly.

    It is recorded as the staff reply it is (deadline met, ticket waiting on the customer)
    and nothing is sent: the customer already has it.
    """
    ticket = _referenced_ticket(step, parsed)
    if ticket is None:
        return Applied(InboundState.IGNORED, "ignored", reason="sent mail that answers no ticket")
    article = add_staff_article(
        step,
        ticket,
        inbound,
        parsed,
        StaffWords(
            address=parsed.from_.address if parsed.from_ else "",
            text=parsed.reply_text or parsed.text,
            note=False,
            message_id=parsed.message_id,
            to=[a.address for a in parsed.to],
            cc=[a.address for a in parsed.cc],
        ),
    )
    on_staff_reply(step, ticket, parsed.reply_text or parsed.text)
    ticket.updated_at = step.now
    add_event(
        step,
        ticket,
        "staff_reply_observed",
        article_id=article.id,
        folder=inbound.folder,
        message_id=parsed.message_id,
    )
    return Applied.to(ticket, "staff_reply", reason="observed in sent folder")


# --- tickets a staff member opens for a customer (inbound/forward.py) ---------------------------


def note_article(
    step: Step, ticket: Ticket, inbound: InboundMessage, parsed: ParsedMessage, by: str, text: str
) -> Article:
    """The staff member's own lines on a forward, as an internal note."""
    words = StaffWords(by, text, note=True, message_id=parsed.message_id, to=[], cc=[])
    return add_staff_article(step, ticket, inbound, parsed, words)


def write_to_customer(
    step: Step,
    ticket: Ticket,
    inbound: InboundMessage,
    parsed: ParsedMessage,
    message: StaffMessage,
    claim: StaffClaim,
) -> tuple[Article, int | None]:
    """A staff member's first message on a ticket they opened: relayed to the requester as
    an answer (the ticket then waits on them), or kept as a note with #note; returns the
    article and the outbox row's id (None for a note)."""
    article = _record_article(step, ticket, inbound, parsed, claim, message)
    if message.has("note"):
        return article, None
    row = _relay(step, ticket, article, parsed, message, claim)
    on_staff_reply(step, ticket, message.text)
    return article, row.id
