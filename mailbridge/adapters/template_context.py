"""The context a reply template is rendered with: the keys it may use, their values made
plain before they reach the sandbox, and a realistic sample with every key.

Context keys: plain values only (str, int, float, bool, None, and lists and dicts of them).
Pass the keys a template needs; other keys are refused. ``SAMPLE_CONTEXT`` has all of them.

    ticket_number      int   1042
    ticket_tag         str   "[#1042]", the subject tag that threads replies
    subject            str   the ticket's subject, as the customer wrote it
    requester_name     str   the customer's display name, "" when unknown
    requester_address  str   the customer's address; "" when the mail named none
    no_requester       bool  the ticket has no address to answer (its mail named no
                             sender, or none mail can go to): nothing reaches a customer
                             until a staff member sets one with ``#requester ADDRESS``
    promised_reply     str   "by Tuesday 24 November at 17:00", in the customer's language
                             (mailbridge.core.humanize.format_deadline)
    due_at_iso         str   the same deadline as ISO 8601, for staff
    queue              str   queue name
    priority           str   priority name
    excerpt            str   the first lines of the customer's message, plain, unquoted
                             (mailbridge.core.humanize.excerpt); quote it with ``|quote``
    support_address    str   the address customers write to
    company_name       str   shown in greetings and signatures: the ticket's mailbox's
                             `company`, else [templates] company
    signature          str   the mailbox's `signature` template, rendered with the same
                             values, in mails to the customer; "" elsewhere. A template
                             that does not use it gets it added at its end, after "-- "
    escalation_level   int   1 for the first escalation
    overdue_by         str   "2 hours and 30 minutes" (mailbridge.core.humanize.format_duration)
    staff_name         str | None   the staff member replying or assigned
    reply_text         str   a staff member's answer, relayed to the customer
    links              dict  named URLs, e.g. {"ticket": "https://…"}; may be empty,
                             so test with ``{% if links.ticket is defined %}``
    event              str   why staff are told: "new" ticket or customer "followup";
                             in staff_collision, "held" or "warned" (the reply was sent);
                             in staff_command_error, "" (a reply's commands refused),
                             "token_refused", "forward_refused" or "faq_draft_refused"
                             (the reply was applied, no FAQ draft saved)
    digest             list  earlier messages on the ticket (in staff_collision: those the
                             reply had not seen), oldest first, each a dict
                             {"author", "at" (ISO 8601), "direction" ("in"/"out"), "text"}
    attachments        list  the customer's attachments, each {"filename", "size" (e.g.
                             "2.1 MB"), "attached" (false when too large to ride along)}
    unread             list  what of the customer's mail was not read (parts past a cap,
                             attachments past the size limit), one str each; usually empty
    errors             list  what was wrong with a staff member's commands, one str each
    participants       list  who else gets staff answers, in Cc (tickets/participants.py),
                             each {"name" ("" when unknown), "address"}; may be empty
    deadline           str   which deadline a warning or escalation is about:
                             "first_response" or "resolution" (promised_reply is its time)
    due_in             str   time left until that deadline, "1 hour" (format_duration)
    faq                list  FAQ answers offered in the acknowledgement, best first, each
                             {"title", "answer" (plain text), "file", "score" (0–1)};
                             may be empty or absent, so test with ``{% if faq is defined %}``
    merged_from_tag    str   the tag of the customer's earlier ticket that was merged into
                             this one, "[#1041]" (the `merged` notice); "" elsewhere
    sections           list  the answers to a staff member's query by mail (staff_query), one
                             per command, each a dict {"command" ("#mine"), "kind" ("mine",
                             "overdue", "unassigned", "waiting", "show", "search", "away",
                             "digest"), "tickets" (lines: {"number", "customer",
                             "subject", "age", "deadline", "overdue", "mine", "reply" (a
                             mailto: link), and "snippet" for search, "status"}),
                             "left_out" (lines or, for show, earlier articles not given),
                             "conversation" (show: {"author", "at", "direction",
                             "internal", "kind", "text", "files"}), "value" (away: the last
                             day, "" for none; digest: "on"/"off")}
    rating_good_url    str   on the mails that finish a ticket (closed, staff_reply with
                             #close or #resolve, auto_closed): a ``mailto:`` link whose
                             mail rates the ticket "yes, solved" (tickets/rating.py); ""
                             or absent elsewhere, so test with ``{% if rating_good_url %}``
    rating_bad_url     str   the same for "no, not solved"
    closes_at          str   in a `reminder`: when the ticket closes itself if the customer
                             stays silent, "by Tuesday 1 December at 17:00"; "" when it
                             does not (tickets/waiting.py)
    away_note          dict | None   in a staff notification, escalation or warning sent to
                             the team because the staff member it was for is away
                             (tickets/absence.py): {"name", "address", "until" ("12 Jan",
                             their last day away)}; None otherwise
    queue_digest       list  the daily digest (template `digest`): one entry per open
                             ticket, overdue first, each {"group" ("overdue", "due_today",
                             "open"; "more" for the entry that ends a shortened list),
                             "line" (one line: tag, customer, subject, age, deadline),
                             "reply" (a mailto: URL to the ticket's reply address for the
                             reader, "" on the "more" entry)}; `event` is "personal" (the
                             reader's own tickets) or "team" (the unassigned ones)
    minimal            bool  an acknowledgement to an address the trusted MTA did not
                             authenticate: subject, requester_name, excerpt and faq are
                             blank (mailbridge.core.ack_policy); say less, never more

Every mail mailbridge sends has these values shortened first (mailbridge.core.clip): a text
past its limit (subject 300 characters, excerpt 20,000, reply_text 100,000, others 1,000 or
less) ends with "[… shortened]", and a list past its limit (attachments 100) ends with one
more entry of the same shape saying how many were left out, e.g. {"filename": "… and 49,900
more", "size": "list shortened", "attached": true}.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

from mailbridge.core.humanize import format_day, format_deadline, format_duration
from mailbridge.errors import TemplateError

__all__ = ["CONTEXT_KEYS", "SAMPLE_CONTEXT", "plain_context", "sample_context"]

CONTEXT_KEYS = frozenset(
    {
        "ticket_number",
        "ticket_tag",
        "subject",
        "requester_name",
        "requester_address",
        "no_requester",
        "promised_reply",
        "due_at_iso",
        "queue",
        "priority",
        "excerpt",
        "support_address",
        "company_name",
        "signature",
        "escalation_level",
        "overdue_by",
        "staff_name",
        "reply_text",
        "links",
        "event",
        "digest",
        "attachments",
        "errors",
        "deadline",
        "due_in",
        "faq",
        "minimal",
        "unread",
        "participants",
        "merged_from_tag",
        "sections",
        "closes_at",
        "rating_good_url",
        "rating_bad_url",
        "away_note",
        "queue_digest",
    }
)


def _plain(value: object, key: str, depth: int = 0) -> object:
    """A fresh copy of a plain value; anything else is refused before it reaches a template."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    # Subclasses such as enums become their base type; a markupsafe.Markup is refused, as
    # it would bypass HTML escaping.
    for base in (bool, int, float, str):
        if isinstance(value, base) and not hasattr(value, "__html__"):
            return str.__str__(value) if base is str else base(value)
    if depth < 4 and isinstance(value, list | tuple):
        return [_plain(item, key, depth + 1) for item in value]
    if depth < 4 and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {str.__str__(k): _plain(v, key, depth + 1) for k, v in value.items()}
    raise TemplateError(f"context value {key!r} is a {type(value).__name__}, not a plain value")


def plain_context(context: Mapping[str, object]) -> dict[str, object]:
    unknown = sorted(set(context) - CONTEXT_KEYS)
    if unknown:
        raise TemplateError(f"unknown context keys {unknown}; known: {sorted(CONTEXT_KEYS)}")
    return {key: _plain(value, key) for key, value in context.items()}


def sample_context(language: str) -> dict[str, object]:
    """A realistic context with every key, its phrases in the given language."""
    due = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
    return {
        "ticket_number": 1042,
        "ticket_tag": "[#1042]",
        "subject": "Charging cable missing from order 55-1931",
        "requester_name": "Giulia Rossi",
        "requester_address": "giulia.rossi@example.net",
        "no_requester": False,
        "promised_reply": format_deadline(due, language, ZoneInfo("Europe/Rome")),
        "due_at_iso": due.isoformat(),
        "queue": "support",
        "priority": "normal",
        "excerpt": "Hello,\nthe box for order 55-1931 arrived today without the charging cable.\n"
        "Could you send one? <b>Thanks</b> & regards",
        "support_address": "support@example.com",
        "company_name": "Example Ltd",
        "signature": "",  # a mailbox's own, rendered, when the mail is signed
        "escalation_level": 1,
        "overdue_by": format_duration(timedelta(hours=2, minutes=30), language),
        "staff_name": "Alice Bianchi",
        "reply_text": "Hello Giulia,\n\na new cable is on its way; the tracking number is "
        "RX123456789IT.\n\nSorry for the trouble.",
        "links": {"ticket": "https://helpdesk.example.com/tickets/1042"},
        "event": "new",
        "digest": [
            {
                "author": "Giulia Rossi",
                "at": "2026-11-20T09:12:00+01:00",
                "direction": "in",
                "text": "My order 55-1931 has not arrived yet.",
            },
            {
                "author": "Alice Bianchi",
                "at": "2026-11-20T11:40:00+01:00",
                "direction": "out",
                "text": "It left our warehouse yesterday; it should reach you on Monday.",
            },
        ],
        "attachments": [
            {"filename": "photo.jpg", "size": "1.2 MB", "attached": True},
            {"filename": "video.mov", "size": "48 MB", "attached": False},
        ],
        "errors": ["#priority soonish: expected one of low, normal, high, urgent"],
        "participants": [
            {"name": "Marco Rossi", "address": "marco.rossi@example.net"},
            {"name": "", "address": "accounts@example.net"},
        ],
        "unread": ["more than 1000 MIME parts: the parts after the 1000th were not read"],
        "deadline": "first_response",
        "due_in": format_duration(timedelta(hours=1), language),
        "faq": [
            {
                "title": "Where is my order?",
                "file": "order-tracking.md",
                "score": 0.61,
                "answer": "Open Orders in your account: each order shows its tracking number.",
            },
        ],
        "minimal": False,
        "merged_from_tag": "[#1041]",
        "sections": [
            {
                "command": "#mine",
                "kind": "mine",
                "tickets": [
                    {
                        "number": 1042,
                        "customer": "Giulia Rossi",
                        "subject": "Charging cable missing from order 55-1931",
                        "age": "2d 3h",
                        "deadline": "2026-11-24 17:00",
                        "overdue": False,
                        "mine": True,
                        "reply": "mailto:support%2Bt1042-k2x-abcdefghijklmnop@example.com"
                        "?subject=Re%3A%20%5B%231042%5D",
                    }
                ],
                "left_out": 0,
            }
        ],
        "rating_good_url": "mailto:support%2Br1042-good-kq3f7-abcdefghijklmnop@example.com"
        "?subject=%5B%231042%5D%20yes%2C%20solved",
        "rating_bad_url": "mailto:support%2Br1042-bad-kq3f7-abcdefghijklmnop@example.com"
        "?subject=%5B%231042%5D%20no%2C%20not%20solved",
        "closes_at": format_deadline(due + timedelta(days=7), language, ZoneInfo("Europe/Rome")),
        "away_note": None,  # away_note_sample(language) when the staff member is away
        "queue_digest": [
            {
                "group": "overdue",
                "line": "[#1042] Giulia Rossi | Charging cable missing | 2d | "
                "overdue since 2026-11-24 17:00",
                "reply": "mailto:support%2Bt1042-1ab-abcdefghijklmnop@example.com"
                "?subject=Re%3A%20%5B%231042%5D%20Charging%20cable%20missing",
            },
            {
                "group": "due_today",
                "line": "[#1043] Marco Rossi | Invoice 2026-77 | 5h | due 2026-11-25 12:00",
                "reply": "mailto:support%2Bt1043-1ab-abcdefghijklmnop@example.com"
                "?subject=Re%3A%20%5B%231043%5D%20Invoice%202026-77",
            },
            {
                "group": "open",
                "line": "[#1040] accounts@example.net | Refund | 4d | waiting on the customer",
                "reply": "mailto:support%2Bt1040-1ab-abcdefghijklmnop@example.com"
                "?subject=Re%3A%20%5B%231040%5D%20Refund",
            },
        ],
    }


def away_note_sample(language: str) -> dict[str, object]:
    """The `away_note` of a mail sent to the team for an away staff member."""
    return {
        "name": "Alice",
        "address": "alice@example.com",
        "until": format_day(date(2027, 1, 12), language),
    }


SAMPLE_CONTEXT: Mapping[str, object] = MappingProxyType(sample_context("en"))
