"""The daily digest of a staff member's queue: when it is due, how its tickets are grouped
and ordered, and each ticket's line and reply link. Pure functions on plain values.

The digest of a day falls due at `[digest] hour` (local time in the calendar's zone) on a
business day: a day with opening hours that is not a holiday or a closed date. Each entry
carries a `mailto:` link to the ticket's reply-token address for the person it goes to, so
answering from the digest works like answering a notification (inbound/staff.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from mailbridge.core.business_hours import BusinessCalendar
from mailbridge.core.ticket_lines import mailto, one_line

__all__ = [
    "LINK_SUBJECT_CHARS",
    "Group",
    "QueueItem",
    "digest_day",
    "format_age",
    "format_line",
    "group_of",
    "is_business_day",
    "one_line",
    "ordered",
    "reply_link",
    "sort_key",
]

Group = Literal["overdue", "due_today", "open"]
_GROUP_RANK: dict[Group, int] = {"overdue": 0, "due_today": 1, "open": 2}
LINK_SUBJECT_CHARS = 80  # of the customer's subject in a reply link; the tag always fits
LINE_SUBJECT_CHARS = 120
LINE_CUSTOMER_CHARS = 80


@dataclass(frozen=True, slots=True)
class _Words:
    due: str
    overdue: str
    waiting: str
    none: str
    day: str
    hour: str
    nobody: str


_WORDS = {
    "en": _Words("due", "overdue since", "waiting on the customer", "no deadline", "d", "h", "?"),
    "it": _Words(
        "scade", "scaduto dal", "in attesa del cliente", "nessuna scadenza", "g", "h", "?"
    ),
}


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One open ticket as the digest shows it. `due` is its earliest running deadline
    (None while none runs: answered and waiting on the customer, or never tracked)."""

    tag: str  # "[#1042]"
    customer: str  # the requester's name, else address, "" when neither
    subject: str
    created_at: datetime
    due: datetime | None
    waiting: bool = False


def is_business_day(day: date, cal: BusinessCalendar) -> bool:
    """A day the business opens at all: it has opening hours and is not a closed date."""
    return bool(cal.open_intervals(day))


def digest_day(now: datetime, hour: int, cal: BusinessCalendar) -> date | None:
    """The local day whose digest is due at `now`: today, once its local time has reached
    `hour` on a business day; None before the hour and on days the business is closed."""
    local = now.astimezone(cal.zone)
    if local.hour < hour or not is_business_day(local.date(), cal):
        return None
    return local.date()


def group_of(item: QueueItem, now: datetime, zone: ZoneInfo) -> Group:
    """Overdue once a running deadline has passed; due today when it falls on today's
    local date; else open."""
    if item.due is None:
        return "open"
    if item.due <= now:
        return "overdue"
    return (
        "due_today" if item.due.astimezone(zone).date() == now.astimezone(zone).date() else "open"
    )


def sort_key(item: QueueItem, now: datetime, zone: ZoneInfo) -> tuple[int, datetime, datetime]:
    """Overdue first, then due today, then the rest; within a group the earliest deadline
    first, tickets without one last, oldest first."""
    far = datetime.max.replace(tzinfo=now.tzinfo)
    return (_GROUP_RANK[group_of(item, now, zone)], item.due or far, item.created_at)


def ordered(items: Iterable[QueueItem], now: datetime, zone: ZoneInfo) -> list[QueueItem]:
    """The items in digest order (sort_key)."""
    return sorted(items, key=lambda item: sort_key(item, now, zone))


def format_age(age: timedelta, language: str) -> str:
    """A compact age: "3d", "5h", "<1h" (Italian "3g")."""
    words = _words(language)
    if age >= timedelta(days=1):
        return f"{age // timedelta(days=1)}{words.day}"
    if age >= timedelta(hours=1):
        return f"{age // timedelta(hours=1)}{words.hour}"
    return f"<1{words.hour}"


def format_line(item: QueueItem, now: datetime, zone: ZoneInfo, language: str) -> str:
    """`[#1042] Ada Lovelace | Printer on fire | 2d | due 2026-11-24 17:00`, on one line."""
    words = _words(language)
    customer = one_line(item.customer, LINE_CUSTOMER_CHARS) or words.nobody
    subject = one_line(item.subject, LINE_SUBJECT_CHARS)
    age = format_age(max(now - item.created_at, timedelta(0)), language)
    return f"{item.tag} {customer} | {subject} | {age} | {_deadline(item, now, zone, words)}"


def _deadline(item: QueueItem, now: datetime, zone: ZoneInfo, words: _Words) -> str:
    if item.due is None:
        return words.waiting if item.waiting else words.none
    when = item.due.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    return f"{words.overdue if item.due <= now else words.due} {when}"


def reply_link(address: str, tag: str, subject: str) -> str:
    """`mailto:` the reply-token `address`, with "Re: [#1042] subject" as its subject.

    Both parts are percent-encoded whole (RFC 6068): whatever the customer put in the
    subject stays inside the link's `subject` value and cannot add a recipient, a header
    or a body."""
    wanted = f"Re: {tag} {one_line(subject, LINK_SUBJECT_CHARS)}".rstrip()
    return mailto(address, wanted)


def _words(language: str) -> _Words:
    return _WORDS.get(language.strip().lower().split("-")[0], _WORDS["en"])
