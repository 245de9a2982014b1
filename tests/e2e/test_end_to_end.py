"""The whole loop against real IMAP servers (pymap in-process, Dovecot) and a real SMTP sink
(aiosmtpd), on SQLite and PostgreSQL: mail in, tickets, acknowledgements out, escalation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.db.models import Article, Escalation, InboundMessage, Outbox, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.service.daemon import Daemon, PassReport
from tests.support.builders import mail, make_config
from tests.support.served_app import app, clock

pytestmark = pytest.mark.integration

__all__ = ["app", "clock"]  # the fixtures these tests use

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MX = "mx.shop.example"  # the trusted MTA
SIGNED = {"Authentication-Results": f"{MX}; dkim=pass header.d=customer.example"}


@pytest.fixture
def app_sections() -> dict[str, Any]:
    return {"staff": {"trusted_authserv_id": MX}}


def run_pass(app: App) -> PassReport:
    return asyncio.run(Daemon(app).run_once())


def count(app: App, model: type) -> int:
    with app.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def tickets(app: App) -> list[Ticket]:
    with app.sessions() as session:
        return list(session.scalars(select(Ticket).order_by(Ticket.id)))


def test_each_customer_mail_becomes_a_ticket_with_one_acknowledgement(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    first = mail(
        "Ada <ada@customer.example>",
        "Printer on fire",
        message_id="<a1@customer.example>",
        headers=SIGNED,
    )
    second = mail("Bob <bob@other.example>", "Invoice wrong", message_id="<b1@other.example>")
    imap_server.append(first)
    imap_server.append(second)

    report = run_pass(app)

    assert report.ok and report.processed.created == 2
    created = tickets(app)
    assert [t.requester_address for t in created] == ["ada@customer.example", "bob@other.example"]
    assert [t.number for t in created] == [1000, 1001]
    acks = smtp_sink.wait_for(2)
    by_recipient = {tuple(m.recipients): m.message for m in acks}
    ack = by_recipient[("ada@customer.example",)]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["Reply-To"].addresses[0].addr_spec == "support@shop.example"
    assert ack["In-Reply-To"] == "<a1@customer.example>"
    assert "<a1@customer.example>" in ack["References"]
    assert ack["Message-ID"].endswith("@shop.example>")
    assert "[#1000]" in ack["Subject"]
    assert ack["X-Loop"]
    body = ack.get_body(("plain",)).get_content()
    assert "1000" in body and "Printer on fire" in ack["Subject"]
    # Bob's mail carries no proof of its sender: his acknowledgement repeats nothing of it.
    minimal = by_recipient[("bob@other.example",)]
    assert minimal["In-Reply-To"] is None and "Invoice" not in minimal.as_string()
    assert "[#1001]" in minimal["Subject"]
    # The processed mail was moved away from the inbox only after it was stored.
    assert imap_server.messages("INBOX") == []
    assert len(imap_server.messages("Processed")) == 2


def test_a_customer_with_broken_folding_and_raw_gb2312_headers_reads_their_own_subject(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    subject, name = "关于订单 1931 的问题", "张伟"
    raw = (
        f"Authentication-Results: {MX}; dkim=pass header.d=example.cn\r\n".encode()
        + b"X-Brightmail-Tracker: H4sIAAAAAAAAA+NgFmpgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBg\r\n"
        b"H4sIAAAAAAAAA+NgFmpgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBg\r\n"
        b"From: " + name.encode("gb2312") + b" <zhang@example.cn>\r\n"
        b"To: support@shop.example\r\nSubject: " + subject.encode("gb2312") + b"\r\n"
        b"Message-ID: <gb@example.cn>\r\nDate: Mon, 23 Nov 2026 08:00:00 +0800\r\n"
        b"Content-Type: text/plain; charset=gb2312\r\n\r\n"
        + "我的订单还没有到。".encode("gb2312")
        + b"\r\n"
    )
    imap_server.append(raw)

    run_pass(app)

    ticket = tickets(app)[0]
    assert (ticket.requester_address, ticket.requester_name) == ("zhang@example.cn", name)
    assert ticket.subject == subject
    ack = smtp_sink.wait_for(1)[0]
    assert ack.recipients == ("zhang@example.cn",)
    assert ack.message["Subject"] == f"Re: [#1000] {subject}"
    assert "我的订单还没有到" in ack.message.get_body(("plain",)).get_content()


def test_reply_to_the_acknowledgement_joins_the_ticket_without_a_second_ack(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append(mail(message_id="<first@customer.example>"))
    run_pass(app)
    ack = smtp_sink.wait_for(1)[0].message

    imap_server.append(
        mail(subject=f"Re: {ack['Subject']}", body="Any news?\n", in_reply_to=ack["Message-ID"])
    )
    report = run_pass(app)

    assert report.processed.created == 0 and report.processed.processed == 1
    assert count(app, Ticket) == 1
    assert count(app, Article) == 2
    assert count(app, Outbox) == 1
    assert len(smtp_sink.received) == 1


def test_follow_up_by_subject_tag_from_the_requester_joins_the_ticket(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append(mail())
    run_pass(app)
    imap_server.append(mail(subject="[#1000] one more thing", body="Also the fax.\n"))
    imap_server.append(mail("Mallory <mallory@evil.example>", "[#1000] let me in"))
    run_pass(app)

    created = tickets(app)
    assert len(created) == 2, "a stranger's subject tag must not open someone else's ticket"
    assert created[1].requester_address == "mallory@evil.example"
    with app.sessions() as session:
        on_first = session.scalars(
            select(Article.subject).where(Article.ticket_id == created[0].id)
        ).all()
    assert on_first == ["Printer on fire", "[#1000] one more thing"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"Precedence": "bulk"},
        {"List-Id": "<news.list.example>"},
    ],
)
def test_automated_mail_gets_no_acknowledgement(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, headers: dict[str, str]
) -> None:
    imap_server.append(mail(headers=headers))
    report = run_pass(app)

    assert report.processed.acknowledged == 0
    assert count(app, Outbox) == 0
    assert smtp_sink.received == []
    assert count(app, InboundMessage) == 1, "automated mail is stored all the same"


def test_running_the_pass_again_creates_nothing_twice(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append(mail())
    run_pass(app)
    run_pass(app)
    # The same mail delivered again (a client re-sending it) is recognised too.
    imap_server.append(mail(message_id=tickets_message_id(app)))
    run_pass(app)

    assert count(app, Ticket) == 1
    assert count(app, Outbox) == 1
    assert len(smtp_sink.received) == 1


def tickets_message_id(app: App) -> str:
    with app.sessions() as session:
        message_id = session.scalars(select(Article.message_id)).one()
    assert message_id
    return f"<{message_id}>"


def test_mailbox_with_keep_after_action_is_not_read_twice(
    tmp_path: Path,
    database_url: str,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    config = make_config(
        tmp_path,
        database_url=database_url,
        imap=imap_server,
        smtp=smtp_sink,
        mailbox=[
            {
                "name": "support",
                "address": "support@shop.example",
                "host": imap_server.host,
                "port": imap_server.port,
                "security": "none",
                "username": imap_server.username,
                "password_env": "MB_TEST_IMAP_PASSWORD",
                "after": "keep",
            }
        ],
    )
    app = build_app(config, clock=clock)
    try:
        imap_server.append(mail())
        run_pass(app)
        imap_server.append(mail(subject="Second"))
        second = run_pass(app)
    finally:
        app.close()

    assert second.fetched == {"support": 1}
    assert len(imap_server.messages("INBOX")) == 2
    assert len(smtp_sink.received) == 2


def test_overdue_ticket_is_escalated_exactly_once(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    imap_server.append(mail())
    run_pass(app)
    clock.advance(timedelta(hours=7, minutes=59))
    assert run_pass(app).escalated == 0

    clock.advance(timedelta(minutes=2))
    assert run_pass(app).escalated == 1
    assert run_pass(app).escalated == 0

    assert count(app, Escalation) == 1
    assert tickets(app)[0].escalation_level == 1
    received = smtp_sink.wait_for(2)
    escalation = received[1]
    assert list(escalation.recipients) == ["lead@shop.example"]
    assert "[#1000]" in escalation.message["Subject"]
    assert len(smtp_sink.received) == 2


def test_temporary_smtp_failure_leaves_the_ack_pending_until_a_later_pass(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    smtp_sink.fail_next(1, 451)
    imap_server.append(mail())
    report = run_pass(app)

    assert report.sent.deferred == 1
    with app.sessions() as session:
        row = session.scalars(select(Outbox)).one()
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error and "451" in row.last_error
    assert smtp_sink.received == []

    assert run_pass(app).sent.sent == 0, "the retry waits for its backoff"
    clock.advance(timedelta(minutes=1))
    assert run_pass(app).sent.sent == 1

    delivered = smtp_sink.wait_for(1)
    assert delivered[0].message["Message-ID"] == f"<{row.message_id}>"
    with app.sessions() as session:
        assert session.scalars(select(Outbox.state)).one() == "sent"


def test_permanent_smtp_failure_is_marked_failed_and_visible(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    smtp_sink.fail_next(1, 550, "5.1.1 mailbox unavailable")
    imap_server.append(mail())
    report = run_pass(app)

    assert report.sent.failed == 1
    with app.sessions() as session:
        row = session.scalars(select(Outbox)).one()
    assert row.state == "failed" and "550" in (row.last_error or "")


def test_a_mailbox_that_refuses_login_is_reported_and_others_go_on(
    tmp_path: Path,
    database_url: str,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    good = {
        "name": "support",
        "address": "support@shop.example",
        "host": imap_server.host,
        "port": imap_server.port,
        "security": "none",
        "username": imap_server.username,
        "password_env": "MB_TEST_IMAP_PASSWORD",
    }
    bad = {**good, "name": "sales", "address": "sales@shop.example", "username": "nobody"}
    config = make_config(
        tmp_path, database_url=database_url, imap=imap_server, smtp=smtp_sink, mailbox=[bad, good]
    )
    app = build_app(config, clock=clock)
    try:
        imap_server.append(mail())
        report = run_pass(app)
    finally:
        app.close()

    assert set(report.failed_mailboxes) == {"sales"}
    assert imap_server.password not in report.failed_mailboxes["sales"]
    assert report.fetched == {"support": 1}
    assert len(smtp_sink.wait_for(1)) == 1


@pytest.mark.parametrize(
    "app_sections",
    [
        {
            "staff": {
                "trusted_authserv_id": MX,
                "addresses": ["alice@shop.example"],
                "team_address": "team@shop.example",
            }
        }
    ],
    ids=["staff"],
)
def test_a_copied_colleague_gets_the_staff_answer_and_replies_all_without_an_ack(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    """Reply-all, the way mail clients do it: Ada copies Marco, staff answer her (Marco in
    Cc), Marco answers all; his mail joins the ticket and nobody is acknowledged again."""
    imap_server.append(
        mail(
            "Ada <ada@customer.example>",
            message_id="<a1@customer.example>",
            headers={**SIGNED, "Cc": "Marco <marco@customer.example>"},
        )
    )
    run_pass(app)
    notice = next(m for m in smtp_sink.wait_for(2) if "team@shop.example" in m.recipients)
    imap_server.append(
        mail(
            "Alice <alice@shop.example>",
            "Re: " + notice.message["Subject"],
            "A new printer is on its way.\n",
            to=notice.message["Reply-To"].addresses[0].addr_spec,
            in_reply_to=notice.message["Message-ID"],
        )
    )
    run_pass(app)
    answer = next(m for m in smtp_sink.wait_for(3) if "marco@customer.example" in m.recipients)
    assert sorted(answer.recipients) == ["ada@customer.example", "marco@customer.example"]
    assert answer.message["Cc"].addresses[0].addr_spec == "marco@customer.example"

    imap_server.append(
        mail(
            "Marco <marco@customer.example>",
            "Re: " + answer.message["Subject"],
            "Thanks, I will be in.\n",
            message_id="<m1@customer.example>",
            in_reply_to=answer.message["Message-ID"],
            headers={"Cc": "ada@customer.example"},
        )
    )
    report = run_pass(app)

    assert report.ok and report.processed.created == 0
    assert count(app, Ticket) == 1
    acks = [m for m in smtp_sink.received if m.message["Auto-Submitted"] == "auto-replied"]
    assert [list(m.recipients) for m in acks] == [["ada@customer.example"]]
    with app.sessions() as session:
        marcos = session.scalars(
            select(Article).where(Article.from_address == "marco@customer.example")
        ).one()
    assert marcos.author_kind == "customer"
