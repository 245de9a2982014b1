"""One line per ticket for mail to staff (the answer to `#mine`, the daily digest): number,
customer, subject, age and deadline, with a `mailto:` link that answers the ticket.

Pure: the caller gives the moment, the zone and the ticket's token address. Every value is
flattened to one line and shortened, so a customer's subject cannot add lines of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

MAX_LINES = 200  # lines one mail lists; the rest are counted ("… and N more")
CUSTOMER_CHARS = 60
SUBJECT_CHARS = 100
LINK_SUBJECT_CHARS = 80


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What a line shows of one ticket, read by the caller."""

    number: int
    customer_name: str
    customer_address: str
    subject: str
    created_at: datetime
    deadline: datetime | None  # the running deadline, None when none runs
    reply_address: str  # the ticket's token address for the reader (inbound.identity)
    mine: bool = False  # assigned to the reader


@dataclass(frozen=True, slots=True)
class TicketLine:
    number: int
    customer: str
    subject: str
    age: str  # "3d 4h"
    deadline: str  # "2026-11-24 17:00", "" when none runs
    overdue: bool
    mine: bool
    reply: str  # mailto: link

    def as_entry(self) -> dict[str, object]:
        """The line as a template value (adapters/template_context.py, `sections`)."""
        return {
            "number": self.number,
            "customer": self.customer,
            "subject": self.subject,
            "age": self.age,
            "deadline": self.deadline,
            "overdue": self.overdue,
            "mine": self.mine,
            "reply": self.reply,
        }


# Line breaks of every kind, tabs and control characters: none may reach a listed line.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\s]+")


def one_line(text: str, limit: int) -> str:
    """`text` as one line of at most `limit` characters (then ending in "…"): every run of
    whitespace or control characters is one space, so a customer's subject cannot start a
    line of its own. Reads a bounded prefix, whatever the size of `text`."""
    flat = _UNPRINTABLE.sub(" ", text[: limit * 4]).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def format_age(delta: timedelta) -> str:
    """A compact age: "3d 4h", "5h 10m", "12m"; "0m" for the future."""
    minutes = max(int(delta.total_seconds()) // 60, 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"


def format_moment(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def mailto(address: str, subject: str) -> str:
    """A `mailto:` link to `address` with `subject`, both percent-encoded (RFC 6068): a
    subject cannot add a recipient, a header or a body to the link, and the `+` of a token
    address is `%2B`, which no client reads as a space. The one builder of such links
    (ticket lines, the digest, rating links)."""
    return f"mailto:{quote(address, safe='@')}?subject={quote(subject, safe='')}"


def ticket_line(facts: TicketFacts, now: datetime, zone: ZoneInfo, tag: str) -> TicketLine:
    """The line of one ticket; `tag` is its subject tag ("[#1042]")."""
    customer = facts.customer_name or facts.customer_address or "?"
    subject = one_line(facts.subject, SUBJECT_CHARS)
    link_subject = f"Re: {tag} {one_line(facts.subject, LINK_SUBJECT_CHARS)}".rstrip()
    return TicketLine(
        number=facts.number,
        customer=one_line(customer, CUSTOMER_CHARS),
        subject=subject,
        age=format_age(now - facts.created_at),
        deadline=format_moment(facts.deadline, zone) if facts.deadline else "",
        overdue=facts.deadline is not None and facts.deadline <= now,
        mine=facts.mine,
        reply=mailto(facts.reply_address, link_subject),
    )
