"""Queries by mail (inbound/staff_queries.py), end to end on the embedded IMAP server and
the SMTP sink, on SQLite and PostgreSQL: proven staff get their answer alone; nothing is
relayed, no ticket or article is made; anyone else's `#mine` is customer mail."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from mailbridge.app import App
from mailbridge.clock import FrozenClock
from mailbridge.db.models import Article, Event, Outbox, StaffState, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import ReceivedMail, SmtpSink
from mailbridge.inbound.staff_queries import NO_DATE_ABSENCE
from tests.support.served_app import app, body, clock, run_pass, to
from tests.support.sla_world import START
from tests.support.staff_world import ALICE, SIGNED_STAFF

pytestmark = pytest.mark.integration

__all__ = ["app", "clock"]  # the fixtures these tests use

ADA = "ada@customer.example"
BEA = "bea@customer.example"
TEAM = "team@shop.example"
PROOF = {"Authentication-Results": "mx.shop.example; dkim=pass header.d=shop.example"}
_ids = itertools.count()


@pytest.fixture
def app_sections() -> dict[str, Any]:
    return {"staff": SIGNED_STAFF}


def message(
    sender: str,
    text: str,
    *,
    subject: str = "queue",
    to_address: str = "support@shop.example",
    headers: dict[str, str] | None = None,
    files: dict[str, bytes] | None = None,
    in_reply_to: str | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to_address, subject
    msg["Date"] = format_datetime(START)
    msg["Message-ID"] = f"<q{next(_ids)}@example.net>"
    if in_reply_to:
        msg["In-Reply-To"] = msg["References"] = in_reply_to
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text)
    for name, data in (files or {}).items():
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return msg.as_bytes()


class Desk:
    """Two customers' tickets: 1000 (Ada, a file attached, assigned to Alice by her note)
    and 1001 (Bea, quoting an earlier mail in Italian)."""

    def __init__(self, app: App, imap: EmbeddedImapServer, sink: SmtpSink) -> None:
        self.app, self.imap, self.sink = app, imap, sink
        self.deliver(
            message(
                f"Ada Lovelace <{ADA}>",
                "Hello,\nmy printer is on fire.\n",
                subject="Printer on fire",
                files={"fattura_stampante.pdf": b"%PDF-1.4 " * 50},
            )
        )
        quoted = (
            "Buongiorno,\nnessuna novità?\n\n> Il 20/11 ho scritto:\n"
            "> la fotocopiatrice perde toner\n"
        )
        self.deliver(message(f"Bea <{BEA}>", quoted, subject="Toner"))
        notice = self.notices()[0]
        self.deliver(
            message(
                f"Alice Bianchi <{ALICE}>",
                "#note\n#assign me\nTaking this one.",
                subject="Re: " + str(notice.message["Subject"]),
                to_address=notice.message["Reply-To"].addresses[0].addr_spec,
                in_reply_to=str(notice.message["Message-ID"]),
            )
        )

    def deliver(self, raw: bytes) -> None:
        self.imap.append(raw)
        run_pass(self.app)
        self.sink.wait_for(self.outbox_count())

    def outbox_count(self) -> int:
        with self.app.sessions() as session:
            return session.scalar(select(func.count(Outbox.id)).where(Outbox.state == "sent")) or 0

    def notices(self) -> list[ReceivedMail]:
        return to(self.sink, TEAM)

    def ask(
        self, text: str, *, headers: dict[str, str] | None = PROOF, **keys: Any
    ) -> list[ReceivedMail]:
        """Alice's query; the mails she got for it."""
        before = len(to(self.sink, ALICE))
        self.deliver(message(f"Alice Bianchi <{ALICE}>", text, headers=headers, **keys))
        return to(self.sink, ALICE)[before:]

    def counts(self) -> tuple[int, int]:
        with self.app.sessions() as session:
            tickets = session.scalar(select(func.count(Ticket.id))) or 0
            articles = session.scalar(select(func.count(Article.id))) or 0
        return tickets, articles

    def events(self, kind: str) -> list[Event]:
        with self.app.sessions() as session:
            return list(session.scalars(select(Event).where(Event.type == kind).order_by(Event.id)))

    def staff_state(self) -> StaffState:
        with self.app.sessions() as session:
            return session.get_one(StaffState, ALICE)


@pytest.fixture
def desk(app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink) -> Desk:
    return Desk(app, imap_server, smtp_sink)


def only_answer(received: list[ReceivedMail]) -> str:
    (answer,) = received
    assert list(answer.recipients) == [ALICE]
    assert str(answer.message["Auto-Submitted"]) == "auto-replied"
    return body(answer)


def test_mine_lists_her_tickets_alone_with_reply_links_and_changes_nothing(desk: Desk) -> None:
    before, customers = desk.counts(), len(to(desk.sink, ADA)) + len(to(desk.sink, BEA))
    text = only_answer(desk.ask("#mine\n\n-- \nAlice Bianchi | Shop"))
    assert "#1000  Ada Lovelace  Printer on fire" in text and "#1001" not in text
    assert "Reply: mailto:support%2Bt1000-" in text
    assert desk.counts() == before  # no ticket, no article
    assert len(to(desk.sink, ADA)) + len(to(desk.sink, BEA)) == customers
    (event,) = desk.events("staff_query")
    assert event.ticket_id is None
    assert event.data["by"] == ALICE and event.data["via"] == "mail" and event.data["proof"]


def test_overdue_unassigned_and_waiting(desk: Desk, clock: FrozenClock) -> None:
    text = only_answer(desk.ask("#unassigned"))
    assert "#1001  Bea  Toner" in text and "#1000" not in text
    clock.advance(timedelta(hours=9))  # past the 8 h first response of both
    text = only_answer(desk.ask("#overdue"))
    assert "#1000" in text and "#1001" in text and text.count("OVERDUE") == 2
    assert "(yours)" in text.split("#1001")[0]  # 1000 is hers, marked
    assert "No tickets." in only_answer(desk.ask("#waiting"))


def test_show_gives_the_conversation_with_files_and_notes_marked(desk: Desk) -> None:
    text = only_answer(desk.ask("#show 1000"))
    assert "#1000  Printer on fire" in text and "Customer: Ada Lovelace" in text
    assert "> my printer is on fire." in text
    assert "> Attachments: fattura_stampante.pdf" in text
    assert "[INTERNAL NOTE]" in text and "> Taking this one." in text
    assert "Reply: mailto:support%2Bt1000-" in text


def test_show_of_no_such_ticket_is_refused(desk: Desk) -> None:
    text = only_answer(desk.ask("#show 4242"))
    assert "#show 4242: no ticket with that number" in text


def test_search_finds_italian_words_in_a_quoted_article_and_an_attachment_name(
    desk: Desk,
) -> None:
    text = only_answer(desk.ask("#search Fotocopiatrice"))
    assert "#1001" in text and "#1000" not in text and "[fotocopiatrice] perde toner" in text
    text = only_answer(desk.ask("#search fattura"))
    assert "#1000" in text and "#1001" not in text


def test_a_reply_to_a_notification_may_ask_too(desk: Desk) -> None:
    notice = desk.notices()[-1]
    text = only_answer(
        desk.ask(
            "#mine",
            headers=None,  # the token proves her
            to_address=notice.message["Reply-To"].addresses[0].addr_spec,
            in_reply_to=str(notice.message["Message-ID"]),
        )
    )
    assert "#1000" in text


def test_forged_staff_mine_is_an_ordinary_ticket_and_leaks_nothing(desk: Desk) -> None:
    tickets, _ = desk.counts()
    got = desk.ask(
        "#mine",
        headers={"Authentication-Results": "mx.evil.example; dkim=pass header.d=shop.example"},
    )
    assert desk.counts()[0] == tickets + 1  # customer mail, like anyone's
    for received in got:
        assert (
            "Printer on fire" not in received.raw.decode() and "Toner" not in received.raw.decode()
        )
        assert "mailto:support%2Bt1000" not in received.raw.decode()
    assert not desk.events("staff_query")
    with desk.app.sessions() as session:
        assert not session.scalars(select(Outbox).where(Outbox.kind == "query")).all()


def test_away_until_a_date_sets_her_state(desk: Desk) -> None:
    text = only_answer(desk.ask("#away until 12/01"))
    assert "2027-01-12" in text
    state = desk.staff_state()
    assert state.away_source == "mail" and state.away_since == START
    assert state.away_until == datetime(2027, 1, 13, tzinfo=UTC)  # end of the day, UTC zone
    (event,) = desk.events("staff_away")
    assert event.ticket_id is None and event.data["via"] == "mail"


def test_away_alone_has_no_return_date_and_a_bad_date_is_refused(desk: Desk) -> None:
    # No date: away until the next real mail, NO_DATE_ABSENCE at the most.
    assert "or until you next write to us" in only_answer(desk.ask("#away"))
    state = desk.staff_state()
    assert state.away_since is not None and state.away_until is not None
    assert state.away_until - state.away_since == NO_DATE_ABSENCE
    text = only_answer(desk.ask("#away until the 31st of never"))
    assert "not a date we read" in text
    assert len(desk.events("staff_away")) == 1


def test_digest_off_and_on(desk: Desk) -> None:
    assert "no longer get the daily digest" in only_answer(desk.ask("#digest off"))
    assert desk.staff_state().digest_enabled is False
    only_answer(desk.ask("#digest on"))
    assert desk.staff_state().digest_enabled is True
    assert [e.data["enabled"] for e in desk.events("digest_changed")] == [False, True]


def test_a_question_beside_a_ticket_command_is_refused_whole(desk: Desk) -> None:
    notice = desk.notices()[0]
    customers = len(to(desk.sink, ADA))
    text = only_answer(
        desk.ask(
            "#mine\n#close",
            headers=None,
            to_address=notice.message["Reply-To"].addresses[0].addr_spec,
            in_reply_to=str(notice.message["Message-ID"]),
        )
    )
    assert "separate mails" in text and "#1000  Ada" not in text
    with desk.app.sessions() as session:
        assert session.scalars(select(Ticket).where(Ticket.number == 1000)).one().status != "closed"
    assert len(to(desk.sink, ADA)) == customers
    assert desk.events("staff_query_refused")


def test_a_question_with_text_after_it_reaches_no_customer(desk: Desk) -> None:
    notice = desk.notices()[0]
    customers = len(to(desk.sink, ADA))
    text = only_answer(
        desk.ask(
            "#away until 12/01\nAda, I am off until then.",
            headers=None,
            to_address=notice.message["Reply-To"].addresses[0].addr_spec,
            in_reply_to=str(notice.message["Message-ID"]),
        )
    )
    assert "commands alone" in text
    assert len(to(desk.sink, ADA)) == customers
    with desk.app.sessions() as session:
        assert session.get(StaffState, ALICE) is None
