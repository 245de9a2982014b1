"""Chat and webhook notifications, the pure part that decides: which audit events of a
ticket a `[[webhook]]` hears of, what an announcement holds, and the HMAC-SHA256 signature
a receiver checks. The payload of each format is in core/webhook_formats.py.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, get_args

__all__ = [
    "SIGNATURE_HEADER",
    "WEBHOOK_EVENTS",
    "WEBHOOK_FORMATS",
    "Announcement",
    "CustomerText",
    "EscalationFacts",
    "TicketFacts",
    "WebhookEvent",
    "WebhookFormat",
    "announced",
    "chosen",
    "sign",
    "verify",
]

WebhookEvent = Literal["ticket_created", "escalated", "sla_breached", "unhappy", "resolved"]
WEBHOOK_EVENTS: Final[tuple[WebhookEvent, ...]] = get_args(WebhookEvent)
WebhookFormat = Literal["json", "slack", "teams", "matrix"]
WEBHOOK_FORMATS: Final[tuple[WebhookFormat, ...]] = get_args(WebhookFormat)

SIGNATURE_HEADER: Final = "X-Mailbridge-Signature"
# A receiver should refuse a signature older than this: a recorded request replayed later
# carries its old timestamp, which the signature covers.
SIGNATURE_TOLERANCE: Final = 300
_UNHAPPY: Final = "unhappy"  # the tag of a customer who said "not solved" (tickets/rating.py)
_FINISHED: Final = frozenset({"resolved", "closed"})


# --- which audit events announce what -------------------------------------------------------

# (audit event type, its data, the ticket's status after it) -> does it announce the event?
Rule = Callable[[str, Mapping[str, object], str], bool]


def _opened(event_type: str, data: Mapping[str, object], status: str) -> bool:
    # Automated mail and spam make tickets too, but nobody is told of those (the same
    # choice as the staff notification's, inbound/apply.py); a customer's ticket opened
    # as spam is announced when staff say it is not (tickets/spam.py).
    if event_type == "not_spam":
        return data.get("opened_as_spam") is True and data.get("kind") == "customer"
    return event_type == "created" and data.get("kind") == "customer" and status != "spam"


def _breached(event_type: str, data: Mapping[str, object], status: str) -> bool:
    # Level 1 is the first level at or after a deadline: the moment its miss is known.
    return event_type == "escalated" and data.get("level") == 1


def _escalated(event_type: str, data: Mapping[str, object], status: str) -> bool:
    return event_type == "escalated"


def _unhappy(event_type: str, data: Mapping[str, object], status: str) -> bool:
    return _UNHAPPY in _tags_added(data)


def _resolved(event_type: str, data: Mapping[str, object], status: str) -> bool:
    if event_type in ("resolved_by_customer", "auto_closed"):
        return True
    changes = data.get("changes")
    change = changes.get("status") if isinstance(changes, Mapping) else None
    return isinstance(change, list | tuple) and len(change) == 2 and change[1] in _FINISHED


def _tags_added(data: Mapping[str, object]) -> Collection[object]:
    """The tags an event records as added: `tagged` (rules, a rating), `tags_changed` (the
    command line), or the `changes` of a staff member's commands (a reply, a forward)."""
    changes = data.get("changes")
    for found in (
        data.get("tags"),
        data.get("tags_added"),
        changes.get("tags_added") if isinstance(changes, Mapping) else None,
    ):
        if isinstance(found, list | tuple):
            return found
    return ()


# In the order their announcements are queued when one audit event makes several.
ANNOUNCES: Final[tuple[tuple[WebhookEvent, Rule], ...]] = (
    ("ticket_created", _opened),
    ("sla_breached", _breached),
    ("escalated", _escalated),
    ("unhappy", _unhappy),
    ("resolved", _resolved),
)


def announced(event_type: str, data: Mapping[str, object], status: str) -> tuple[WebhookEvent, ...]:
    """The webhook events an audit event on a ticket announces (most announce none)."""
    return tuple(event for event, rule in ANNOUNCES if rule(event_type, data, status))


def chosen(
    events: tuple[WebhookEvent, ...], subscribed: Collection[WebhookEvent]
) -> tuple[WebhookEvent, ...]:
    """What one webhook is sent of `events`: those it lists, once per level: a level 1 goes
    as `sla_breached` to a webhook listing that, and only as `escalated` to one that does
    not, so a chat hears of each level once."""
    wanted = tuple(event for event in events if event in subscribed)
    if "sla_breached" in wanted:
        return tuple(event for event in wanted if event != "escalated")
    return wanted


# --- what an announcement holds ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """The ticket as the announcement describes it: nothing the customer wrote."""

    number: int
    tag: str  # "[#1042]"
    mailbox: str
    queue: str | None
    sla_policy: str | None
    status: str
    priority: str
    escalation_level: int
    created_at: datetime
    first_response_due_at: datetime | None
    first_responded_at: datetime | None
    resolution_due_at: datetime | None
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class EscalationFacts:
    """The deadline a `sla_breached` or `escalated` announcement is about."""

    deadline: str  # first_response | resolution
    level: int
    due_at: datetime
    overdue_minutes: int


@dataclass(frozen=True, slots=True)
class CustomerText:
    """What the customer chose, sent only with `include_text = true`."""

    subject: str
    name: str
    address: str


@dataclass(frozen=True, slots=True)
class Announcement:
    """One delivery: its id (the receiver's key against repeats), the event, its moment."""

    id: str
    event: WebhookEvent
    at: datetime
    ticket: TicketFacts
    escalation: EscalationFacts | None = None
    customer: CustomerText | None = None


# --- the signature -------------------------------------------------------------------------


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The `X-Mailbridge-Signature` value: `t=<unix seconds>,v1=<hex HMAC-SHA256>` over
    `<t>.` followed by the exact body bytes, so the timestamp cannot be changed either."""
    mac = hmac.new(secret, f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: bytes, header: str, body: bytes, now: int, tolerance: int = SIGNATURE_TOLERANCE
) -> bool:
    """What a receiver does: the header's timestamp is recent and its MAC matches."""
    parts = dict(item.partition("=")[::2] for item in header.split(","))
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).rpartition("v1=")[2]
    return hmac.compare_digest(expected, parts.get("v1", ""))
