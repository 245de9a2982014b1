"""The daily digest end to end: customers write through the embedded IMAP server, the daemon
passes with a moving clock, and the digests are read from the SMTP sink; on SQLite and
PostgreSQL. Its reply links are answered like a notification, through the daemon."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from sqlalchemy import select, update

from mailbridge.app import App, Step, build_app
from mailbridge.clock import FrozenClock
from mailbridge.core.digest import LINK_SUBJECT_CHARS, one_line
from mailbridge.db.models import Event, Outbox, StaffState
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import ReceivedMail, SmtpSink
from mailbridge.inbound.digest import send_digests, set_digest
from tests.support.builders import mail
from tests.support.served_app import app, body, run_pass, to
from tests.support.staff_world import ALICE, BOB, SIGNED_STAFF

pytestmark = pytest.mark.integration

__all__ = ["app"]  # the fixture these tests use

SUNDAY_EVENING = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)  # 21:00 in Rome
MONDAY_EARLY = datetime(2026, 11, 23, 5, 30, tzinfo=UTC)  # 06:30 in Rome
MONDAY_EIGHT = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 08:00 in Rome
TEAM = "team@shop.example"
ADA, BEA, CY = "ada@customer.example", "bea@customer.example", "cy@customer.example"
SECTIONS: dict[str, Any] = {
    "staff": SIGNED_STAFF,
    "digest": {"hour": 8},
    "calendar": {"timezone": "Europe/Rome", "holidays": "IT"},
    "rule": [
        {"name": "bea", "when": {"from": BEA}, "then": {"assignee": ALICE}},
        {"name": "cy", "when": {"from": CY}, "then": {"assignee": ALICE}},
    ],
}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(SUNDAY_EVENING)


@pytest.fixture
def app_sections() -> dict[str, Any]:
    return SECTIONS


def move_to(clock: FrozenClock, moment: datetime) -> None:
    clock.advance(moment - clock.now())


def write(imap: EmbeddedImapServer, sender: str, subject: str, number: int) -> None:
    imap.append(mail(f"Customer <{sender}>", subject, message_id=f"<c{number}@customer.example>"))


def three_tickets(app: App, imap: EmbeddedImapServer, clock: FrozenClock) -> None:
    """#1000 Alice's, overdue by Monday morning; #1001 the team's and #1002 Alice's, both
    due on Monday."""
    write(imap, BEA, "Old problem", 1)
    run_pass(app)
    move_to(clock, MONDAY_EARLY)
    write(imap, ADA, "Printer on fire", 2)
    write(imap, CY, "Invoice missing", 3)
    run_pass(app)


def digests(app: App) -> list[Outbox]:
    with app.sessions() as session:
        return list(session.scalars(select(Outbox).where(Outbox.kind == "digest")))


def digest_to(sink: SmtpSink, address: str) -> list[ReceivedMail]:
    return [m for m in to(sink, address) if "open" in str(m.message["Subject"])]


def links(received: ReceivedMail) -> dict[str, str]:
    """Each ticket tag in the digest, and the reply link on the line below it."""
    pairs = re.findall(r"^  (\[#\d+\]) .*\n\s+Reply: <(mailto:[^>\s]+)>", body(received), re.M)
    return dict(pairs)


def test_at_eight_on_a_business_day_each_reader_gets_their_queue(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    three_tickets(app, imap_server, clock)
    assert digests(app) == [], "before the hour: no digest"

    move_to(clock, MONDAY_EIGHT)
    assert run_pass(app).digests == 2  # Alice's and the team's; Bob has nothing open

    (alice,) = digest_to(smtp_sink, ALICE)
    text = body(alice)
    assert alice.message["Subject"] == "Your tickets: 2 open, 1 overdue, 1 due today"
    assert alice.message["Auto-Submitted"] == "auto-generated"
    overdue, today = text.index("Overdue:"), text.index("Due today:")
    assert overdue < text.index("[#1000] Customer | Old problem | 11h | overdue since") < today
    assert today < text.index("[#1002] Customer | Invoice missing | 1h | due 2026-11-23 14:30")
    assert "[#1001]" not in text
    (team,) = digest_to(smtp_sink, TEAM)
    assert team.message["Subject"] == "Unassigned tickets: 1 open, 1 due today"
    assert "[#1001] Customer | Printer on fire" in body(team) and "[#1000]" not in body(team)
    assert digest_to(smtp_sink, BOB) == []

    run_pass(app)
    move_to(clock, MONDAY_EIGHT + timedelta(hours=9))
    run_pass(app)
    assert len(digests(app)) == 2, "once a day"
    move_to(clock, MONDAY_EIGHT + timedelta(days=1))  # Tuesday 08:00
    run_pass(app)
    assert len(digests(app)) == 4


@pytest.mark.parametrize(
    "closed_day",
    [
        datetime(2026, 11, 28, 9, 0, tzinfo=UTC),  # Saturday
        datetime(2026, 12, 8, 9, 0, tzinfo=UTC),  # Tuesday, a holiday in Italy
    ],
)
def test_no_digest_on_a_day_the_business_is_closed(
    app: App, imap_server: EmbeddedImapServer, clock: FrozenClock, closed_day: datetime
) -> None:
    three_tickets(app, imap_server, clock)
    move_to(clock, closed_day)
    run_pass(app)
    assert digests(app) == []
    move_to(clock, closed_day + timedelta(days=2 if closed_day.weekday() == 5 else 1))
    assert run_pass(app).digests == 2  # the next business day


def test_nothing_open_sends_nothing(app: App, clock: FrozenClock) -> None:
    move_to(clock, MONDAY_EIGHT)
    assert run_pass(app).digests == 0
    assert digests(app) == []


def test_two_instances_at_once_send_each_digest_once(
    app: App, imap_server: EmbeddedImapServer, clock: FrozenClock
) -> None:
    three_tickets(app, imap_server, clock)
    move_to(clock, MONDAY_EIGHT)
    apps = [build_app(app.config, clock=clock) for _ in range(2)]
    start = threading.Barrier(len(apps))
    queued: list[int] = []

    def instance(other: App) -> None:
        start.wait()
        queued.append(send_digests(other))

    threads = [threading.Thread(target=instance, args=(other,)) for other in apps]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for other in apps:
            other.close()
    assert sorted(queued) in ([0, 2], [1, 1])
    assert sorted(row.envelope_to[0] for row in digests(app)) == [ALICE, TEAM]


def test_an_opted_out_or_away_reader_gets_none(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    three_tickets(app, imap_server, clock)
    with app.transaction() as session:
        set_digest(Step(session, app, clock.now()), ALICE, False, by=ALICE, via="mail")
        set_digest(Step(session, app, clock.now()), TEAM, True, by=BOB, via="command line")
        session.execute(
            update(StaffState)
            .where(StaffState.address == TEAM)
            .values(away_until=MONDAY_EIGHT + timedelta(hours=2))
        )
    move_to(clock, MONDAY_EIGHT)
    run_pass(app)
    assert digests(app) == []

    move_to(clock, MONDAY_EIGHT + timedelta(hours=3))  # the team is back the same day
    assert run_pass(app).digests == 1
    assert len(digest_to(smtp_sink, TEAM)) == 1 and digest_to(smtp_sink, ALICE) == []
    with app.sessions() as session:
        changes = session.scalars(select(Event).where(Event.type == "digest_changed")).all()
        assert [(e.data["address"], e.data["enabled"], e.data["via"]) for e in changes] == [
            (ALICE, False, "mail"),
            (TEAM, True, "command line"),
        ]
    with app.transaction() as session:
        set_digest(Step(session, app, clock.now()), ALICE, True, by=ALICE, via="mail")
    assert run_pass(app).digests == 1  # opted in again: today's comes at once
    assert len(digest_to(smtp_sink, ALICE)) == 1


def answer(link: str, sender: str, text: str, when: datetime) -> bytes:
    """The mail a client writes when `sender` clicks `link` and types `text`."""
    parts = urlsplit(link)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = unquote(parts.path)
    msg["Subject"] = parse_qs(parts.query)["subject"][0]
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<digest-answer.{abs(hash(text))}@shop.example>"
    msg.set_content(text + "\n")
    return msg.as_bytes()


def test_answering_from_the_digest_reaches_the_customer(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    three_tickets(app, imap_server, clock)
    move_to(clock, MONDAY_EIGHT)
    run_pass(app)
    mine = links(digest_to(smtp_sink, ALICE)[0])
    team = links(digest_to(smtp_sink, TEAM)[0])
    assert set(mine) == {"[#1000]", "[#1002]"} and set(team) == {"[#1001]"}
    assert parse_qs(urlsplit(mine["[#1000]"]).query)["subject"] == ["Re: [#1000] Old problem"]

    imap_server.append(
        answer(mine["[#1000]"], f"Alice <{ALICE}>", "A fix is on its way.", clock.now())
    )
    imap_server.append(answer(team["[#1001]"], f"Bob <{BOB}>", "Unplug it, please.", clock.now()))
    run_pass(app)

    (to_bea,) = [m for m in to(smtp_sink, BEA) if "A fix is on its way." in body(m)]
    assert "[#1000]" in str(to_bea.message["Subject"])
    (to_ada,) = [m for m in to(smtp_sink, ADA) if "Unplug it, please." in body(m)]
    assert "support+t" not in to_ada.raw.decode("utf-8", "replace")


def test_someone_else_using_a_digest_link_relays_nothing(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    three_tickets(app, imap_server, clock)
    move_to(clock, MONDAY_EIGHT)
    run_pass(app)
    link = links(digest_to(smtp_sink, ALICE)[0])["[#1000]"]
    imap_server.append(answer(link, f"Bob <{BOB}>", "Bob pretends to be Alice.", clock.now()))
    imap_server.append(answer(link, "Eve <eve@evil.example>", "#close", clock.now()))
    run_pass(app)
    assert not [m for m in to(smtp_sink, BEA) if "pretends" in m.raw.decode("utf-8", "replace")]
    with app.sessions() as session:
        refused = session.scalars(select(Event).where(Event.type == "staff_token_refused")).all()
    assert len(refused) == 2


def test_a_hostile_subject_cannot_add_recipients_or_lines(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    hostile = (
        "x&cc=eve@evil.example?body=pay%0D%0ABcc: eve@evil.example> "
        "Reply: <mailto:eve@evil.example>"
    )
    write(imap_server, BEA, hostile, 1)
    move_to(clock, MONDAY_EIGHT)
    run_pass(app)
    (alice,) = digest_to(smtp_sink, ALICE)
    assert alice.recipients == (ALICE,) and alice.message["Bcc"] is None
    (link,) = links(alice).values()
    query = parse_qs(urlsplit(link).query)
    assert list(query) == ["subject"] and unquote(urlsplit(link).path).startswith("support+t1000-")
    assert query["subject"] == ["Re: [#1000] " + one_line(hostile, LINK_SUBJECT_CHARS)]
    assert len(re.findall(r"^\s+Reply: <", body(alice), re.M)) == 1
