"""The daily digest's pure decisions: is it due now, how tickets are grouped and ordered,
and each line and reply link, with plain values."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

import pytest

from mailbridge.core.business_hours import BusinessCalendar
from mailbridge.core.digest import (
    QueueItem,
    digest_day,
    format_age,
    format_line,
    group_of,
    is_business_day,
    one_line,
    ordered,
    reply_link,
)

ROME = ZoneInfo("Europe/Rome")
WEEKDAYS = {day: ["09:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
CAL = BusinessCalendar.parse("Europe/Rome", WEEKDAYS, [date(2026, 12, 8)])  # Immacolata
MONDAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=ROME)  # Monday 08:00 in Rome
TOKEN = "support+t1042-1ab-abcdefghijklmnop@shop.example"


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ROME)


def item(due: datetime | None, *, created: datetime | None = None, **keys: object) -> QueueItem:
    values: dict[str, object] = {
        "tag": "[#1042]",
        "customer": "Ada Lovelace",
        "subject": "Printer on fire",
        "created_at": created or NOW - timedelta(days=2, hours=3),
        "due": due,
    }
    values.update(keys)
    return QueueItem(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (local(MONDAY, 8), MONDAY),  # at the hour
        (local(MONDAY, 17, 59), MONDAY),  # later the same day
        (local(MONDAY, 7, 59), None),  # before the hour
        (local(date(2026, 11, 28), 9), None),  # Saturday
        (local(date(2026, 11, 29), 9), None),  # Sunday
        (local(date(2026, 12, 8), 9), None),  # a closed date (a holiday)
        (local(date(2026, 12, 9), 8), date(2026, 12, 9)),  # the day after it
    ],
)
def test_the_digest_is_due_from_its_hour_on_business_days_only(
    moment: datetime, expected: date | None
) -> None:
    assert digest_day(moment, 8, CAL) == expected


def test_the_hour_is_local_time_in_the_calendar_zone() -> None:
    utc_seven = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 08:00 in Rome
    assert digest_day(utc_seven, 8, CAL) == MONDAY
    assert digest_day(utc_seven - timedelta(seconds=1), 8, CAL) is None
    # Late on Friday in UTC is already Saturday in Rome: no digest.
    assert digest_day(datetime(2026, 11, 27, 23, 30, tzinfo=UTC), 8, CAL) is None


def test_a_business_day_is_one_with_opening_hours_that_is_not_closed() -> None:
    assert is_business_day(MONDAY, CAL)
    assert not is_business_day(date(2026, 11, 28), CAL)
    assert not is_business_day(date(2026, 12, 8), CAL)


def test_groups_overdue_due_today_and_open() -> None:
    assert group_of(item(NOW - timedelta(minutes=1)), NOW, ROME) == "overdue"
    assert group_of(item(NOW), NOW, ROME) == "overdue"
    assert group_of(item(local(MONDAY, 23, 59)), NOW, ROME) == "due_today"
    assert group_of(item(local(date(2026, 11, 24), 0, 0)), NOW, ROME) == "open"
    assert group_of(item(None, waiting=True), NOW, ROME) == "open"


def test_order_is_overdue_then_due_today_then_the_rest() -> None:
    later = item(local(date(2026, 11, 26), 9), tag="[#5]")
    waiting = item(None, tag="[#6]", waiting=True)
    today = item(local(MONDAY, 17), tag="[#4]")
    late = item(NOW - timedelta(hours=2), tag="[#2]")
    later_late = item(NOW - timedelta(hours=1), tag="[#3]")
    tags = [i.tag for i in ordered([waiting, later, today, later_late, late], NOW, ROME)]
    assert tags == ["[#2]", "[#3]", "[#4]", "[#5]", "[#6]"]


def test_a_line_has_number_customer_subject_age_and_deadline() -> None:
    assert (
        format_line(item(local(MONDAY, 17)), NOW, ROME, "en")
        == "[#1042] Ada Lovelace | Printer on fire | 2d | due 2026-11-23 17:00"
    )
    assert (
        format_line(item(NOW - timedelta(hours=1)), NOW, ROME, "it")
        == "[#1042] Ada Lovelace | Printer on fire | 2g | scaduto dal 2026-11-23 07:00"
    )
    assert format_line(item(None, waiting=True), NOW, ROME, "en").endswith(
        "| waiting on the customer"
    )
    assert "[#1042] ? |" in format_line(item(None, customer=""), NOW, ROME, "en")


def test_ages() -> None:
    assert format_age(timedelta(minutes=59), "en") == "<1h"
    assert format_age(timedelta(hours=5, minutes=59), "en") == "5h"
    assert format_age(timedelta(days=3, hours=23), "it") == "3g"


def test_a_customer_subject_cannot_break_the_line() -> None:
    hostile = "Hi\r\n\r\nReply: <mailto:evil@evil.example>\tfake\x00\u2028line"
    line = format_line(item(None, subject=hostile, customer="Eve\nBcc: x"), NOW, ROME, "en")
    assert "\n" not in line and "\r" not in line and "\x00" not in line and "\u2028" not in line
    assert one_line("a" * 10_000, 120) == "a" * 119 + "…"


def test_the_reply_link_goes_to_the_token_address_with_the_tagged_subject() -> None:
    link = reply_link(TOKEN, "[#1042]", "Printer on fire")
    parts = urlsplit(link)
    assert parts.scheme == "mailto" and unquote(parts.path) == TOKEN
    assert parse_qs(parts.query) == {"subject": ["Re: [#1042] Printer on fire"]}


@pytest.mark.parametrize(
    "subject",
    [
        "x&to=eve@evil.example&cc=eve@evil.example",
        "x?body=send the money&bcc=eve@evil.example",
        "x\r\nBcc: eve@evil.example",
        "x#frag>< \"quoted\" 'single' %0D%0ABcc:eve@evil.example",
        "Stampante in fiamme ☃ 🔥 ünïcödé",
    ],
)
def test_a_hostile_subject_stays_inside_the_encoded_subject(subject: str) -> None:
    link = reply_link(TOKEN, "[#1042]", subject)
    parts = urlsplit(link)
    assert unquote(parts.path) == TOKEN
    query = parse_qs(parts.query, keep_blank_values=True)
    assert list(query) == ["subject"] and len(query["subject"]) == 1
    assert query["subject"][0] == "Re: [#1042] " + one_line(subject, 80)
    assert all(c not in link for c in " \r\n<>\"'#") and link.isascii()


def test_a_huge_subject_makes_a_bounded_link_quickly() -> None:
    started = time.thread_time()  # CPU time of this thread: the same on a busy machine
    link = reply_link(TOKEN, "[#1042]", "🔥\n" * 500_000)
    assert time.thread_time() - started < 2
    assert len(link) < 1500


def test_a_long_digest_lists_the_first_hundred_and_says_how_many_more() -> None:
    from mailbridge.core.clip import clip_context

    entries = [{"group": "open", "line": f"[#{n}]", "reply": "mailto:x@y"} for n in range(150)]
    clipped = clip_context({"queue_digest": entries}, "en")["queue_digest"]
    assert isinstance(clipped, list) and len(clipped) == 101
    assert clipped[-1] == {"group": "more", "line": "… and 50 more (list shortened)", "reply": ""}
