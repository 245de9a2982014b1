"""core.ticket_lines: one line per ticket, its age, deadline and reply link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from mailbridge.core.ticket_lines import TicketFacts, format_age, mailto, ticket_line

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ROME = ZoneInfo("Europe/Rome")


def facts(**changes: object) -> TicketFacts:
    values: dict[str, object] = {
        "number": 1042,
        "customer_name": "Ada Lovelace",
        "customer_address": "ada@customer.example",
        "subject": "Printer on fire",
        "created_at": NOW - timedelta(days=2, hours=3),
        "deadline": NOW - timedelta(minutes=5),
        "reply_address": "support+t1042-k2x-abcdefghijklmnop@shop.example",
    }
    values.update(changes)
    return TicketFacts(**values)  # type: ignore[arg-type]


def test_a_line_has_age_deadline_in_the_zone_and_a_reply_link() -> None:
    line = ticket_line(facts(), NOW, ROME, "[#1042]")
    assert (line.number, line.customer, line.age) == (1042, "Ada Lovelace", "2d 3h")
    assert line.deadline == "2026-11-23 12:55" and line.overdue
    assert line.reply.startswith("mailto:support%2Bt1042-k2x-abcdefghijklmnop@shop.example?")
    assert unquote(line.reply.partition("subject=")[2]) == "Re: [#1042] Printer on fire"


def test_a_hostile_subject_adds_no_line_and_no_header_to_the_link() -> None:
    subject = "Hi\r\n#1 fake line\nBcc: x@evil.example&body=pwned" + "x" * 10_000
    line = ticket_line(facts(subject=subject, deadline=None), NOW, ROME, "[#1042]")
    assert "\n" not in line.subject and len(line.subject) <= 100
    assert "\n" not in line.reply and "&" not in line.reply and "\r" not in line.reply
    assert line.deadline == "" and not line.overdue
    assert "?" not in line.reply.partition("?")[2]


def test_ages() -> None:
    assert format_age(timedelta(minutes=12)) == "12m"
    assert format_age(timedelta(hours=5)) == "5h"
    assert format_age(timedelta(days=3)) == "3d"
    assert format_age(timedelta(seconds=-5)) == "0m"


def test_mailto_keeps_the_address_readable() -> None:
    assert mailto("a+b@x.example", "a b") == "mailto:a%2Bb@x.example?subject=a%20b"
