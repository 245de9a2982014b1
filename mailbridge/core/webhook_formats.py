"""The body of a webhook delivery in each format: our own JSON, Slack (blocks), Microsoft
Teams (an Adaptive Card) and Matrix (an `m.room.message`), from an `Announcement`
(core/webhook_events.py).

The customer's words (subject, name, address) appear only when the webhook says
`include_text = true`, and then escaped for the format they land in, so that a hostile
subject can neither ping a channel nor dress up a link: Slack's `&`, `<`, `>` and
`verbatim` text (no mentions, no links made), a Teams `TextRun` (never read as Markdown),
Matrix HTML-escaped with `m.mentions` empty (no body-based room or name pings).
"""

from __future__ import annotations

import html
import json
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from mailbridge.core.humanize import format_duration
from mailbridge.core.webhook_events import (
    Announcement,
    CustomerText,
    EscalationFacts,
    TicketFacts,
    WebhookFormat,
)

__all__ = ["EXAMPLE", "EXAMPLE_WITH_TEXT", "body_of", "document", "headline", "readme_examples"]

VERSION: Final = 1  # of the json format's schema: keys may be added, never renamed
SUBJECT_CHARS: Final = 200  # customer values are cut here, with "…"
NAME_CHARS: Final = 100
ADDRESS_CHARS: Final = 320
_SEPARATOR: Final = " · "


def headline(a: Announcement) -> str:
    """One line saying what happened, in our words only."""
    tag, ticket, escalation = a.ticket.tag, a.ticket, a.escalation
    if a.event == "ticket_created":
        return f"New ticket {tag} in {ticket.queue or ticket.mailbox}"
    if a.event == "unhappy":
        return f"Ticket {tag}: the customer is not satisfied"
    if a.event == "resolved":
        return f"Ticket {tag} {ticket.status}"
    if escalation is None:
        return f"Ticket {tag} escalated to level {ticket.escalation_level}"
    deadline = escalation.deadline.replace("_", " ")
    late = _late(escalation)
    if a.event == "sla_breached":
        return f"Ticket {tag} missed its {deadline} deadline{f' ({late} late)' if late else ''}"
    state = f"{late} late" if late else "due now"
    return f"Ticket {tag} escalated to level {escalation.level}: {deadline} {state}"


def details(ticket: TicketFacts) -> str:
    """The ticket's queue, priority, status, mailbox and policy, on one line."""
    return _SEPARATOR.join(
        f"{name} {value}"
        for name, value in (
            ("queue", ticket.queue),
            ("priority", ticket.priority),
            ("status", ticket.status),
            ("mailbox", ticket.mailbox),
            ("policy", ticket.sla_policy),
        )
        if value
    )


def customer_lines(customer: CustomerText | None) -> list[str]:
    """The customer's subject and sender, one line each, cleaned and cut; none without text."""
    if customer is None:
        return []
    subject = _clean(customer.subject, SUBJECT_CHARS)
    name, address = _clean(customer.name, NAME_CHARS), _clean(customer.address, ADDRESS_CHARS)
    sender = f"{name} <{address}>" if name else address
    return [f"Subject: {subject}", f"From: {sender}"]


# --- the formats ---------------------------------------------------------------------------


def json_document(a: Announcement) -> dict[str, object]:
    """Our own stable schema (`version` 1): keys may be added, never renamed or removed."""
    ticket = a.ticket
    doc: dict[str, object] = {
        "version": VERSION,
        "id": a.id,
        "event": a.event,
        "at": _iso(a.at),
        "ticket": {
            "number": ticket.number,
            "tag": ticket.tag,
            "mailbox": ticket.mailbox,
            "queue": ticket.queue,
            "sla_policy": ticket.sla_policy,
            "status": ticket.status,
            "priority": ticket.priority,
            "escalation_level": ticket.escalation_level,
            "created_at": _iso(ticket.created_at),
            "first_response_due_at": _iso(ticket.first_response_due_at),
            "first_responded_at": _iso(ticket.first_responded_at),
            "resolution_due_at": _iso(ticket.resolution_due_at),
            "resolved_at": _iso(ticket.resolved_at),
        },
    }
    if a.escalation is not None:
        doc["escalation"] = {
            "deadline": a.escalation.deadline,
            "level": a.escalation.level,
            "due_at": _iso(a.escalation.due_at),
            "overdue_minutes": a.escalation.overdue_minutes,
        }
    if a.customer is not None:
        doc["customer"] = {
            "subject": _clean(a.customer.subject, SUBJECT_CHARS),
            "name": _clean(a.customer.name, NAME_CHARS),
            "address": _clean(a.customer.address, ADDRESS_CHARS),
        }
    return doc


def slack_document(a: Announcement) -> dict[str, object]:
    """An incoming-webhook message: `text` (the notification, our words only) and blocks
    whose mrkdwn is escaped and `verbatim` (Slack makes no links or mentions of it)."""
    main = "\n".join([f"*{_slack(headline(a))}*", *map(_slack, customer_lines(a.customer))])
    return {
        "text": _slack(headline(a)),
        "blocks": [
            {"type": "section", "text": _mrkdwn(main)},
            {"type": "context", "elements": [_mrkdwn(_slack(details(a.ticket)))]},
        ],
    }


def teams_document(a: Announcement) -> dict[str, object]:
    """A message with an Adaptive Card (Teams workflows and incoming webhooks take it).
    TextBlock and FactSet values are read as Markdown, so they hold our words only; the
    customer's are `TextRun`s, which Teams never reads as Markdown."""
    facts = [
        {"title": name, "value": value}
        for name, value in (
            ("Queue", a.ticket.queue),
            ("Priority", a.ticket.priority),
            ("Status", a.ticket.status),
            ("Mailbox", a.ticket.mailbox),
            ("Policy", a.ticket.sla_policy),
        )
        if value
    ]
    body: list[dict[str, object]] = [
        {"type": "TextBlock", "text": headline(a), "weight": "Bolder", "wrap": True},
        {"type": "FactSet", "facts": facts},
    ]
    lines = customer_lines(a.customer)
    if lines:
        body.append(
            {
                "type": "RichTextBlock",
                "inlines": [{"type": "TextRun", "text": "\n".join(lines)}],
            }
        )
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    attachment = {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
    return {"type": "message", "attachments": [attachment]}


def matrix_document(a: Announcement) -> dict[str, object]:
    """The content of an `m.room.message` (a notice, as bots send): plain `body` and
    escaped HTML; `m.mentions` empty, so no name or "@room" in the text notifies anyone."""
    lines = [headline(a), details(a.ticket), *customer_lines(a.customer)]
    formatted = f"<p><strong>{html.escape(lines[0])}</strong><br>{html.escape(lines[1])}</p>"
    if a.customer is not None:
        formatted += "<p>" + "<br>".join(html.escape(line) for line in lines[2:]) + "</p>"
    return {
        "msgtype": "m.notice",
        "body": "\n".join(lines),
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
        "m.mentions": {},
    }


DOCUMENTS: Final[Mapping[WebhookFormat, Callable[[Announcement], dict[str, object]]]] = {
    "json": json_document,
    "slack": slack_document,
    "teams": teams_document,
    "matrix": matrix_document,
}


def document(fmt: WebhookFormat, a: Announcement) -> dict[str, object]:
    return DOCUMENTS[fmt](a)


def body_of(fmt: WebhookFormat, a: Announcement) -> bytes:
    """The exact bytes sent (and signed): the document as compact UTF-8 JSON."""
    text = json.dumps(document(fmt, a), ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8")


# --- helpers -------------------------------------------------------------------------------


def _late(escalation: EscalationFacts) -> str:
    minutes = escalation.overdue_minutes
    return format_duration(timedelta(minutes=minutes), "en") if minutes > 0 else ""


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def _clean(text: str, limit: int) -> str:
    """One line: control and format characters (bidi overrides, zero-width) out, runs of
    whitespace as one space, at most `limit` characters with "…" marking a cut."""
    words = " ".join(text.split())  # line breaks first, so that they part words
    line = "".join(ch for ch in words if not unicodedata.category(ch).startswith("C"))
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _slack(text: str) -> str:
    """Slack's escaping: `&`, `<` and `>` are the only characters its markup is made of."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mrkdwn(text: str) -> dict[str, object]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


# --- the README's examples -----------------------------------------------------------------

_AT = datetime(2026, 11, 23, 17, 30, tzinfo=UTC)
EXAMPLE: Final = Announcement(
    id="wh.4f9c2a7e1b3d5f60",
    event="sla_breached",
    at=_AT,
    ticket=TicketFacts(
        number=1042,
        tag="[#1042]",
        mailbox="support",
        queue="billing",
        sla_policy="standard",
        status="new",
        priority="high",
        escalation_level=1,
        created_at=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
        first_response_due_at=datetime(2026, 11, 23, 17, 0, tzinfo=UTC),
        first_responded_at=None,
        resolution_due_at=datetime(2026, 11, 30, 17, 0, tzinfo=UTC),
        resolved_at=None,
    ),
    escalation=EscalationFacts(
        deadline="first_response",
        level=1,
        due_at=datetime(2026, 11, 23, 17, 0, tzinfo=UTC),
        overdue_minutes=30,
    ),
)
EXAMPLE_WITH_TEXT: Final = Announcement(
    id=EXAMPLE.id,
    event=EXAMPLE.event,
    at=EXAMPLE.at,
    ticket=EXAMPLE.ticket,
    escalation=EXAMPLE.escalation,
    customer=CustomerText("Invoice <2026-118> & refund", "Ada Lovelace", "ada@customer.example"),
)


def readme_examples() -> dict[str, str]:
    """The payloads the README shows, indented (the body is the same JSON on one line):
    each format for EXAMPLE, and the json and slack ones with the customer's text."""
    examples: dict[str, dict[str, object]] = {fmt: document(fmt, EXAMPLE) for fmt in DOCUMENTS}
    examples["json+text"] = json_document(EXAMPLE_WITH_TEXT)
    examples["slack+text"] = slack_document(EXAMPLE_WITH_TEXT)
    return {name: json.dumps(doc, ensure_ascii=False, indent=2) for name, doc in examples.items()}
