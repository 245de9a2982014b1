"""Threading: which ticket a mail belongs to, from the Message-IDs it refers to and the
subject tag, and whether a customer's mail to a closed ticket reopens it or starts anew.
Runs inside the caller's transaction, like the rest of apply.
"""

from __future__ import annotations

from datetime import datetime

from mailbridge.app import App, Step
from mailbridge.core.correlate import Candidate, ThreadDecision, choose_ticket, thread_clues
from mailbridge.core.message import ParsedMessage, Verdict
from mailbridge.core.states import CLOSED_STATUSES
from mailbridge.db import queries
from mailbridge.db.models import Ticket
from mailbridge.inbound import identity
from mailbridge.tickets import merge

__all__ = ["closed_for_good", "locked_ticket", "which_ticket"]


def which_ticket(step: Step, parsed: ParsedMessage) -> ThreadDecision:
    """The ticket the mail's references or subject tag name, as far as its sender may
    reach it (core.correlate.choose_ticket); none: it opens a new one."""
    clues = thread_clues(parsed, step.app.config.tickets.tag_prefix)
    candidates: list[Candidate] = []
    by_id = queries.ticket_ids_for_message_ids(step.session, clues.message_ids)
    step.session.info.pop(LOCKED, None)
    for message_id in clues.message_ids:
        if message_id in by_id:
            # Locked as it is read: a follow-up takes this lock next (`locked_ticket`).
            found = queries.locked_ticket(step.session, by_id[message_id])
            step.session.info[LOCKED] = found
            # A merged ticket's mail goes on to the ticket it was merged into.
            referenced = merge.live_ticket(step.session, found)
            if referenced is not None:
                candidates.append(Candidate(referenced.id, "reference", frozenset()))
            break
    if clues.tag_number is not None:
        tagged = merge.live_ticket_by_number(step.session, clues.tag_number)
        if tagged is not None:
            candidates.append(
                Candidate(tagged.id, "tag", queries.participants(step.session, tagged))
            )
    sender = parsed.from_.address if parsed.from_ else ""
    if candidates and identity.from_contradicted(step.app, parsed):
        sender = ""  # a forged From is nobody's: a subject tag alone cannot reach a ticket
    return choose_ticket(sender, candidates)


def locked_ticket(step: Step, ticket_id: int) -> Ticket:
    """The ticket a follow-up joins, locked: the row lock decides when two mailboxes'
    batches meet on one ticket, the second waiting for the first to commit and reading the
    ticket as it left it. The one `which_ticket` just locked costs no second query."""
    locked: Ticket | None = step.session.info.pop(LOCKED, None)
    if locked is not None and locked.id == ticket_id:
        return locked
    return queries.locked_ticket(step.session, ticket_id) or step.session.get_one(Ticket, ticket_id)


LOCKED = "mailbridge.ticket_locked"  # session.info: the ticket `which_ticket` locked


def closed_for_good(app: App, ticket: Ticket, verdict: Verdict, now: datetime) -> bool:
    """A customer mail to a ticket closed longer ago than the reopen window starts anew."""
    if verdict.kind != "customer" or ticket.status not in CLOSED_STATUSES:
        return False
    closed_at = ticket.resolved_at or ticket.updated_at
    return now - closed_at > app.config.tickets.reopen_window
