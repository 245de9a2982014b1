"""Apply: turn one parsed and classified message into ticket changes, articles, events and
outbox rows. Runs inside the caller's transaction; owns no commit.
"""

from __future__ import annotations

from mailbridge.app import Step
from mailbridge.core.clip import clip_text
from mailbridge.core.correlate import ThreadDecision
from mailbridge.core.disposition import TICKET
from mailbridge.core.message import Address, ParsedMessage, Verdict
from mailbridge.core.states import AuthorKind, InboundState, TicketStatus
from mailbridge.db import queries
from mailbridge.db.models import Article, InboundMessage, Ticket
from mailbridge.db.stored_bytes import attachment_row
from mailbridge.inbound import (
    bounces,
    forward,
    identity,
    out_of_office,
    rating,
    routing,
    spam,
    staff,
    staff_notification,
    staff_queries,
    thread,
)
from mailbridge.inbound.acknowledge import maybe_acknowledge
from mailbridge.inbound.new_ticket import open_ticket
from mailbridge.inbound.solved import resolved_by_customer
from mailbridge.tickets import participants
from mailbridge.tickets.deadlines import on_customer_followup
from mailbridge.tickets.events import Applied, add_event
from mailbridge.tickets.requester import STORED_NAME

__all__ = ["Applied", "apply_message"]


def apply_message(
    step: Step,
    inbound: InboundMessage,
    parsed: ParsedMessage,
    verdict: Verdict,
) -> Applied:
    twin = _delivered_twin(step, inbound)
    if twin is not None:
        return _record_second_delivery(step, inbound, twin)
    if step.app.config.mailbox_named(inbound.mailbox).observes_sent(inbound.folder):
        return staff.handle_observed(step, inbound, parsed)
    bounce = bounces.on_message(step, inbound, parsed, verdict)
    if bounce is not None:
        return bounce
    out_of_office.on_auto_reply(step, parsed, verdict)  # a staff out-of-office: away; on
    released = inbound.released_at is not None  # a person decided: a ticket's mail
    claim = None
    if verdict.kind == "customer" and not released:
        claim = identity.staff_claim(step.app, parsed, step.now)
    if claim is not None and claim.refusal is not None:
        return identity.refuse_token(step, inbound, parsed, claim)
    if claim is not None and claim.proof is not None:
        out_of_office.on_staff_mail(step, claim.address)  # their real mail: back
        handled = (
            staff_queries.answer_query(step, inbound, parsed, claim)  # #mine, #show, #away…
            or staff.handle_staff_mail(step, inbound, parsed, claim)
            or _on_behalf(step, inbound, parsed, verdict, claim)
        )
        if handled is not None:
            return handled
        claim = None  # proven staff writing afresh: a ticket like anyone's
    decision = _which_ticket(step, parsed, verdict)
    if not released and (
        verdict.kind == "loop" or (verdict.kind == "bounce" and decision.ticket_id is None)
    ):
        return Applied(
            InboundState.IGNORED, "ignored", reason=f"{verdict.kind}: {', '.join(verdict.rules)}"
        )
    previous: Ticket | None = None
    if decision.ticket_id is not None:
        ticket = thread.locked_ticket(step, decision.ticket_id)
        if not thread.closed_for_good(step.app, ticket, verdict, step.now):
            return _add_followup(step, inbound, ticket, parsed, verdict, decision, claim)
        previous = ticket
    return _open_new(step, inbound, parsed, verdict, decision, claim, previous)


def _open_new(
    step: Step,
    inbound: InboundMessage,
    parsed: ParsedMessage,
    verdict: Verdict,
    decision: ThreadDecision,
    claim: identity.StaffClaim | None,
    previous: Ticket | None,
) -> Applied:
    """A new ticket; a customer's mail may instead become a spam ticket or be ignored, as
    the rules and the spam judgement decide (inbound/spam.py)."""
    routed, disposition = routing.NO_DECISION, TICKET
    if verdict.kind == "customer":
        routed, disposition = spam.route_and_dispose(step, inbound, parsed)
    if disposition.outcome == "ignore":
        return Applied(InboundState.IGNORED, "ignored", reason=disposition.reason)
    is_spam = disposition.outcome == "spam"
    ticket = open_ticket(step, inbound, parsed, verdict, routed.actions, as_spam=is_spam)
    article = _add_article(step, ticket, inbound, parsed, verdict)
    if is_spam:
        return spam.settle_spam(step, ticket, disposition, routed)
    released = spam.note_release(step, ticket, inbound)
    routing.apply_new(step, ticket, routed)
    _copied_join(step, ticket, parsed, verdict)  # before staff are told
    if decision.ignored_tag is not None:
        add_event(
            step,
            ticket,
            "tag_ignored",
            ticket_id=decision.ignored_tag,
            reason="sender is not a participant of the tagged ticket",
        )
    if previous is not None:
        _link(step, previous, ticket)
    acknowledged = maybe_acknowledge(step, ticket, article, inbound, parsed, verdict, routed)
    _tell_staff(step, ticket, article, parsed, verdict, claim, "new")
    return Applied.to(
        ticket, "created", acknowledged=acknowledged, reason=released or disposition.reason
    )


def _which_ticket(step: Step, parsed: ParsedMessage, verdict: Verdict) -> ThreadDecision:
    """A valid rating token names its ticket, whoever sends it: the token is the proof
    (inbound/rating.py). Else the references and the subject tag decide."""
    named = rating.ticket_named(step, parsed, verdict)
    if named is not None:
        step.session.info.pop(thread.LOCKED, None)
        return ThreadDecision(named.id, "rating")
    return thread.which_ticket(step, parsed)


def _on_behalf(
    step: Step,
    inbound: InboundMessage,
    parsed: ParsedMessage,
    verdict: Verdict,
    claim: identity.StaffClaim,
) -> Applied | None:
    """A proven staff member's mail about no ticket that forwards a customer's or names one
    with #requester opens a ticket for the customer; None when it does neither."""
    behalf = forward.on_behalf(step, parsed, claim)
    if behalf is None:
        return None
    holding = forward.ticket_holding(step, behalf)
    if holding is not None:
        return forward.join(step, holding, inbound, behalf)
    return _open_on_behalf(step, inbound, verdict, behalf)


def _open_on_behalf(
    step: Step, inbound: InboundMessage, verdict: Verdict, behalf: forward.OnBehalf
) -> Applied:
    """A proven staff member forwarded a customer's mail, or named one with #requester
    (inbound/forward.py): a new ticket, routed on the original as if the customer had
    written; no threading, the staff member asked for a ticket."""
    opening = behalf.opening
    routed = (
        routing.decide(step, opening, inbound.mailbox)
        if behalf.customer_wrote
        else routing.NO_DECISION
    )
    ticket = open_ticket(step, inbound, opening, verdict, routed.actions)
    article = None
    if behalf.customer_wrote or behalf.refused:
        article = _add_article(step, ticket, inbound, opening, verdict)
    routing.apply_new(step, ticket, routed)
    if behalf.customer_wrote:
        _copied_join(step, ticket, opening, verdict)  # whom the customer had copied
    return forward.settle(step, ticket, article, inbound, behalf, verdict, routed)


def _add_followup(
    step: Step,
    inbound: InboundMessage,
    ticket: Ticket,
    parsed: ParsedMessage,
    verdict: Verdict,
    decision: ThreadDecision,
    claim: identity.StaffClaim | None,
) -> Applied:
    """The mail joins its ticket. From a sender who cannot act on the ticket (never on it,
    or contradicted by the trusted MTA) it is recorded and staff are told, but it changes
    nothing: no status, no "solved", no rule. Mail onto a spam ticket stays there quietly."""
    if ticket.status == TicketStatus.SPAM:
        return spam.followup_on_spam(
            step, ticket, _add_article(step, ticket, inbound, parsed, verdict)
        )
    unverified = ""
    if verdict.kind == "customer" and decision.via == "reference":  # before this article
        unverified = identity.sender_unverified(
            step.app, parsed, queries.participants(step.session, ticket)
        )
    article = _add_article(step, ticket, inbound, parsed, verdict, unverified=bool(unverified))
    if unverified:
        ticket.updated_at = step.now
        add_event(
            step,
            ticket,
            "unverified_sender",
            article_id=article.id,
            address=article.from_address,
            reason=unverified,
        )
        if claim is not None:
            identity.note_unproven(step, ticket, claim)
        staff_notification.notify_staff(
            step, ticket, article, parsed, "unverified", warning=unverified
        )
        return Applied.to(ticket, "followup", reason=f"unverified sender: {unverified}")
    rated = _follow_up(step, ticket, article, parsed, verdict, decision)
    _copied_join(step, ticket, parsed, verdict)
    if rated is not None and rated.verdict == "good":
        return Applied.to(ticket, "rated", reason=f"rated good by {rated.how}")  # nothing to do
    _tell_staff(step, ticket, article, parsed, verdict, claim, "followup")
    return Applied.to(ticket, "followup", reason=decision.via or "")


def _copied_join(step: Step, ticket: Ticket, parsed: ParsedMessage, verdict: Verdict) -> None:
    """Whom a customer's mail copies joins the ticket (tickets/participants.py); automated
    mail and an unverified sender's (which never get here) add nobody."""
    if verdict.kind == "customer":
        participants.from_customer_mail(step, ticket, parsed)


def _tell_staff(
    step: Step,
    ticket: Ticket,
    article: Article,
    parsed: ParsedMessage,
    verdict: Verdict,
    claim: identity.StaffClaim | None,
    event: str,
) -> None:
    """Customer mail goes to the team (automated mail stays on the record only); a staff
    address that could not prove itself is flagged on the ticket."""
    if claim is not None:
        identity.note_unproven(step, ticket, claim)
    if verdict.kind == "customer":
        staff_notification.notify_staff(step, ticket, article, parsed, event)


def _delivered_twin(step: Step, inbound: InboundMessage) -> InboundMessage | None:
    """A twin needs a second configured mailbox; with one, the per-mailbox fingerprint
    uniqueness already rules it out and the look-up is saved."""
    if len(step.app.config.mailbox) < 2:
        return None
    return queries.delivered_twin(step.session, inbound)


def _record_second_delivery(step: Step, inbound: InboundMessage, twin: InboundMessage) -> Applied:
    """The same mail reached another of our mailboxes (To one, Cc the other): one ticket."""
    ticket = step.session.get_one(Ticket, twin.ticket_id)
    add_event(
        step,
        ticket,
        "delivered_again",
        mailbox=inbound.mailbox,
        inbound_message_id=inbound.id,
        first_delivery_id=twin.id,
    )
    return Applied.to(ticket, "duplicate", reason=f"already delivered to mailbox {twin.mailbox}")


def _link(step: Step, old: Ticket, new: Ticket) -> None:
    add_event(
        step,
        new,
        "linked",
        previous=old.number,
        reason="follow-up to a ticket closed longer ago than the reopen window",
    )
    add_event(step, old, "linked", successor=new.number)


def _add_article(
    step: Step,
    ticket: Ticket,
    inbound: InboundMessage,
    parsed: ParsedMessage,
    verdict: Verdict,
    *,
    unverified: bool = False,
) -> Article:
    """The mail as an article; one from an `unverified` sender is marked so, and its author
    does not become one of the ticket's people (queries.participants)."""
    sender = parsed.from_ or Address("", "")
    author_kind = AuthorKind.CUSTOMER if verdict.kind == "customer" else AuthorKind.SYSTEM
    article = Article(
        ticket_id=ticket.id,
        direction="in",
        author_kind=AuthorKind.UNVERIFIED if unverified else author_kind,
        kind=verdict.kind,
        from_name=clip_text(sender.name, STORED_NAME),
        from_address=sender.address,
        to=[a.address for a in parsed.to],
        cc=[a.address for a in parsed.cc],
        message_id=parsed.message_id,
        in_reply_to=parsed.in_reply_to,
        subject=parsed.subject,
        text_body=parsed.text,
        html_body=parsed.html,
        internal=False,
        defects=list(parsed.defects),
        created_at=step.now,
        inbound_message_id=inbound.id,
    )
    queries.insert_later(step.session, article)
    for attachment in parsed.attachments:
        if attachment.skipped_reason:
            add_event(
                step,
                ticket,
                "attachment_skipped",
                article_id=article.id,
                filename=attachment.filename,
                content_type=attachment.content_type,
                size=attachment.size,
                reason=attachment.skipped_reason,
            )
        step.session.add(attachment_row(step.session, article.id, attachment))
    return article


def _follow_up(
    step: Step,
    ticket: Ticket,
    article: Article,
    parsed: ParsedMessage,
    verdict: Verdict,
    decision: ThreadDecision,
) -> rating.Rated | None:
    """The customer's follow-up: a good rating changes nothing more (inbound/rating.py),
    else the ticket opens again (or records a chaser) and the rules run."""
    ticket.updated_at = step.now
    if verdict.kind != "customer":
        add_event(
            step,
            ticket,
            "automated_followup",
            kind=verdict.kind,
            rules=list(verdict.rules),
            article_id=article.id,
        )
        return None
    if resolved_by_customer(step, ticket, article):
        return None
    rated = rating.rate(step, ticket, article, parsed)
    if rated is not None and rated.verdict == "good":
        return rated
    previous = ticket.status
    on_customer_followup(step, ticket)  # open again, or a chaser
    add_event(
        step,
        ticket,
        "followup",
        via=decision.via,
        article_id=article.id,
        status_from=previous,
        status_to=ticket.status,
    )
    rating.after_followup(step, ticket, rated)  # before the rules, which never lower it
    routing.apply_followup(step, ticket, parsed)
    return rated
