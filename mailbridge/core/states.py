"""The closed sets of values the database keeps in its state columns, as types.

Each member is a `str` equal to the value stored, so rows, JSON and printed output hold
the plain value; mypy, not a comment, knows the allowed ones. The columns read back as
members (db.types.StateString); a state inside JSON (`outbox.recipients`) reads back as
the plain string, equal to its member.
"""

from __future__ import annotations

from enum import StrEnum, unique
from typing import Final, Literal

__all__ = [
    "CLOSED_STATUSES",
    "AuthorKind",
    "InboundState",
    "WEBHOOK_KIND",
    "MailKind",
    "OutboxKind",
    "OutboxState",
    "RecipientState",
    "TicketStatus",
]


@unique
class InboundState(StrEnum):
    """Where a fetched message (`inbound_message.state`) is in processing."""

    NEW = "new"  # stored by fetch (or released from quarantine): processing will take it
    PROCESSED = "processed"  # processing made or changed a ticket, or handled a report
    IGNORED = "ignored"  # processing decided to do nothing with it (autoreply, loop, …)
    QUARANTINED = "quarantined"  # processing failed on its last attempt: a person looks


@unique
class TicketStatus(StrEnum):
    """Whose move it is on a ticket (`ticket.status`)."""

    NEW = "new"  # created from a customer's mail; no staff reply yet
    OPEN = "open"  # the customer wrote again after a reply or after it was resolved
    WAITING = "waiting"  # staff replied: waits on the customer, the resolution clock stopped
    RESOLVED = "resolved"  # by a staff #resolve, or by the customer saying it is solved
    CLOSED = "closed"  # by a staff #close
    MERGED = "merged"  # by #merge or `tickets merge`: its mail goes to `merged_into_id`
    # Spam: by the trusted filter's verdict, the blocklist, a rule or a staff #spam; no
    # acknowledgement, notification or deadline, and purged after [spam] purge_after.
    SPAM = "spam"


@unique
class OutboxState(StrEnum):
    """What became of an outgoing mail (`outbox.state`)."""

    PENDING = "pending"  # queued, or retried: the send loop will try (again)
    SENT = "sent"  # the send loop: the server accepted every recipient
    FAILED = "failed"  # the send loop: refused for good, or given up on after retries
    BOUNCED = "bounced"  # inbound bounce handling: accepted, then reported undeliverable


@unique
class RecipientState(StrEnum):
    """What became of one envelope recipient of an outgoing mail (`outbox.recipients`)."""

    PENDING = "pending"  # not yet accepted: the send loop tries it (again); `outbox retry`
    ACCEPTED = "accepted"  # the send loop: the server took the mail for it
    REFUSED = "refused"  # the send loop: the server refused it for good (5xx)
    FAILED = "failed"  # the send loop: still refused for now when retrying was given up
    BOUNCED = "bounced"  # inbound bounce handling: accepted, then reported undeliverable


@unique
class AuthorKind(StrEnum):
    """Who wrote an article (`article.author_kind`), as processing decided."""

    CUSTOMER = "customer"  # a customer's mail to the ticket
    STAFF = "staff"  # a staff member's reply or note, from a proven staff address
    SYSTEM = "system"  # automated mail attached to the ticket (an autoreply, a report)
    UNVERIFIED = "unverified"  # a reply from a sender who cannot act on the ticket


# Every kind of mail mailbridge sends (`outbox.kind`); queue_mail is called with these.
MailKind = Literal[
    "ack",
    "notification",
    "staff_error",
    "staff_refused",
    "reply",
    "closed",
    "sla_warning",
    "escalation",
    "merged",
    "collision",
    "query",
    "reminder",
    "auto_closed",
    "digest",
    "report",
]

# The one outbox row that is no mail: a webhook delivery (outbound/webhooks.py), which the
# send loop hands to an HTTP endpoint, never to the SMTP server.
WEBHOOK_KIND: Final = "webhook"
OutboxKind = MailKind | Literal["webhook"]  # `outbox.kind`

# Done with, for now: no deadline runs, and mail from the customer reopens the ticket (a
# merged ticket's mail goes to the ticket it was merged into instead, inbound/thread.py).
CLOSED_STATUSES: Final = frozenset(
    {TicketStatus.RESOLVED, TicketStatus.CLOSED, TicketStatus.MERGED}
)

# Nobody works on these: done with, or spam. Queues (#mine, #overdue, #unassigned), digests,
# the /metrics and `status` figures and the deadlines leave them out; `tickets list` and
# `tickets search` show spam only when asked for with --status spam. Spam is not closed:
# mail to a spam ticket does not reopen it.
INACTIVE_STATUSES: Final = CLOSED_STATUSES | {TicketStatus.SPAM}
