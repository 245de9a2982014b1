"""Ingestion against a real IMAP server: backlog policies, duplicates across mailboxes,
UIDVALIDITY resets, reopening, poison messages and volume — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from mailbridge.adapters.imap import ImapMailbox, imap_settings
from mailbridge.app import App, build_app
from mailbridge.cli.quarantine import list_quarantined, retry_quarantined
from mailbridge.clock import FrozenClock
from mailbridge.db.models import (
    AttachmentRecord,
    Event,
    InboundMessage,
    MailboxState,
    Outbox,
    Ticket,
)
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.inbound import fetch, process
from mailbridge.inbound.fetch import fetch_mailbox
from mailbridge.service.daemon import Daemon, PassReport
from tests.support.builders import IMAP_PASSWORD_ENV, mail, make_config

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def mailbox(server: EmbeddedImapServer, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "support",
        "address": "support@shop.example",
        "host": server.host,
        "port": server.port,
        "security": "none",
        "username": server.username,
        "password_env": IMAP_PASSWORD_ENV,
        **overrides,
    }


class Harness:
    """Builds apps on one database, so a test can restart mailbridge with other settings."""

    def __init__(
        self, tmp_path: Path, database_url: str, imap: EmbeddedImapServer, smtp: SmtpSink
    ) -> None:
        self.tmp_path, self.database_url, self.imap, self.smtp = tmp_path, database_url, imap, smtp
        self.clock = FrozenClock(NOW)
        self.apps: list[App] = []

    def app(self, **sections: Any) -> App:
        config = make_config(
            self.tmp_path,
            database_url=self.database_url,
            imap=self.imap,
            smtp=self.smtp,
            **sections,
        )
        app = build_app(config, clock=self.clock)
        self.apps.append(app)
        return app

    def close(self) -> None:
        for app in self.apps:
            app.close()


@pytest.fixture
def harness(
    tmp_path: Path, database_url: str, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> Iterator[Harness]:
    harness = Harness(tmp_path, database_url, imap_server, smtp_sink)
    yield harness
    harness.close()


def run_pass(app: App) -> PassReport:
    return asyncio.run(Daemon(app).run_once())


def scalar(app: App, query: Any) -> Any:
    with app.sessions() as session:
        return session.scalar(query)


def count(app: App, model: type, *where: Any) -> int:
    return int(scalar(app, select(func.count()).select_from(model).where(*where)) or 0)


def append_at(
    server: EmbeddedImapServer, raw: bytes, arrived: datetime, folder: str = "INBOX"
) -> None:
    with server.client() as client:
        client.append(folder, raw, msg_time=arrived)


def test_backlog_import_makes_tickets_but_acknowledges_only_recent_mail(
    harness: Harness, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    append_at(
        imap_server, mail("Old <old@customer.example>", "From last week"), NOW - timedelta(days=3)
    )
    append_at(
        imap_server,
        mail("New <new@customer.example>", "From this morning"),
        NOW - timedelta(hours=2),
    )
    app = harness.app()

    report = run_pass(app)

    assert report.processed.created == 2
    assert report.processed.acknowledged == 1
    assert [m.recipients for m in smtp_sink.wait_for(1)] == [("new@customer.example",)]
    suppressed = scalar(app, select(Event.data).where(Event.type == "ack_suppressed"))
    assert "backlog" in suppressed["reason"]
    # After the first connection, every new mail is answered, however old its date.
    append_at(
        imap_server,
        mail("Late <late@customer.example>", "Delayed in transit"),
        NOW - timedelta(days=5),
    )
    assert run_pass(app).processed.acknowledged == 1


def test_backlog_skip_starts_after_the_newest_mail(
    harness: Harness, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append_many([mail(subject="Old one"), mail(subject="Old two")])
    app = harness.app(mailbox=[mailbox(imap_server, backlog="skip", after="keep")])
    assert run_pass(app).processed.created == 0

    imap_server.append(mail(subject="After the switch-on"))
    run_pass(app)

    assert scalar(app, select(Ticket.subject)) == "After the switch-on"
    assert count(app, Ticket) == 1
    assert len(imap_server.messages("INBOX")) == 3, "skipped mail stays where it was"


def test_backlog_acknowledge_answers_everything(
    harness: Harness, imap_server: EmbeddedImapServer
) -> None:
    append_at(imap_server, mail(), NOW - timedelta(days=30))
    app = harness.app(mailbox=[mailbox(imap_server, backlog="acknowledge")])
    assert run_pass(app).processed.acknowledged == 1


def test_same_mail_in_two_mailboxes_is_one_ticket_with_both_deliveries_recorded(
    harness: Harness, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    both = mail(to="support@shop.example, sales@shop.example", message_id="<two@c.example>")
    # Each server delivery adds its own trace headers; the mail itself is the same.
    imap_server.append(b"Received: from mx1 by support\r\n" + both)
    imap_server.append(b"Received: from mx2 by sales\r\n" + both, folder="Sales")
    app = harness.app(
        mailbox=[
            mailbox(imap_server),
            mailbox(imap_server, name="sales", address="sales@shop.example", folder="Sales"),
        ]
    )

    report = run_pass(app)

    assert report.fetched == {"support": 1, "sales": 1}
    assert count(app, Ticket) == 1
    assert count(app, Outbox) == 1
    assert count(app, InboundMessage, InboundMessage.ticket_id.is_not(None)) == 2
    event = scalar(app, select(Event.data).where(Event.type == "delivered_again"))
    assert event["mailbox"] == "sales"


def test_answers_go_back_to_the_mailbox_the_ticket_came_in_through(
    harness: Harness, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append(mail(to="sales@shop.example", message_id="<s@c.example>"), folder="Sales")
    app = harness.app(
        mailbox=[
            mailbox(imap_server),
            mailbox(imap_server, name="sales", address="sales@shop.example", folder="Sales"),
        ]
    )
    run_pass(app)

    ack = smtp_sink.wait_for(1)[0].message
    assert ack["From"].addresses[0].addr_spec == "support@shop.example"  # smtp.from
    assert ack["Reply-To"].addresses[0].addr_spec == "sales@shop.example"


def test_reused_message_id_with_different_content_is_not_a_duplicate(
    harness: Harness, imap_server: EmbeddedImapServer
) -> None:
    imap_server.append(mail(body="First question\n", message_id="<same@c.example>"))
    imap_server.append(
        mail(
            "Other <other@c.example>",
            "Other matter",
            body="Second\n",
            message_id="<same@c.example>",
        )
    )
    app = harness.app()
    run_pass(app)
    assert count(app, InboundMessage) == 2
    assert count(app, Ticket) == 2


def test_uidvalidity_reset_resynchronises_without_creating_anything_twice(
    harness: Harness, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    first, second = mail(subject="One"), mail("B <b@c.example>", "Two")
    imap_server.append_many([first, second], folder="Support")
    app = harness.app(mailbox=[mailbox(imap_server, folder="Support", after="keep")])
    run_pass(app)
    old_validity = scalar(app, select(MailboxState.uidvalidity))

    # The server rebuilds the folder: same mail, new UIDs, new UIDVALIDITY.
    with imap_server.client() as client:
        client.delete_folder("Support")
    imap_server.append_many([first, second, mail("C <c@c.example>", "Three")], folder="Support")
    report = run_pass(app)

    assert report.fetched == {"support": 3}
    assert scalar(app, select(MailboxState.uidvalidity)) != old_validity
    assert count(app, Ticket) == 3
    assert count(app, Outbox) == 3
    assert len(smtp_sink.wait_for(3)) == 3


def test_follow_up_within_the_reopen_window_reopens_later_starts_a_linked_ticket(
    harness: Harness, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    app = harness.app()
    imap_server.append(mail(message_id="<orig@c.example>"))
    run_pass(app)
    with app.transaction() as session:
        session.execute(update(Ticket).values(status="resolved", resolved_at=NOW))

    harness.clock.advance(timedelta(days=2))
    imap_server.append(mail(subject="Re: again", in_reply_to="<orig@c.example>"))
    run_pass(app)
    assert scalar(app, select(Ticket.status)) == "open"
    assert count(app, Ticket) == 1

    with app.transaction() as session:
        session.execute(update(Ticket).values(status="closed", resolved_at=harness.clock.now()))
    harness.clock.advance(timedelta(days=31))
    imap_server.append(mail(subject="Re: once more", in_reply_to="<orig@c.example>"))
    run_pass(app)

    assert count(app, Ticket) == 2
    linked = scalar(app, select(Event.data).where(Event.type == "linked", Event.ticket_id == 2))
    assert linked["previous"] == 1000
    assert count(app, Outbox, Outbox.kind == "ack") == 2


def test_poison_message_is_quarantined_without_blocking_and_can_be_replayed(
    harness: Harness,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A bug that raises on one message. No input causes one on purpose any more (templates
    # render when sent, and the rest is plain data), so the fault is injected.
    real = process.apply_message

    def poisoned(step: Any, inbound: Any, parsed: Any, verdict: Any) -> Any:
        if "boom" in parsed.subject:
            raise ZeroDivisionError("integer division or modulo by zero")
        return real(step, inbound, parsed, verdict)

    monkeypatch.setattr(process, "apply_message", poisoned)
    app = harness.app(tickets={"max_attempts": 2})
    imap_server.append(mail("A <a@c.example>", "boom goes the printer"))
    imap_server.append(mail("B <b@c.example>", "Fine question"))

    first = run_pass(app)
    assert (first.processed.created, first.processed.failed) == (1, 1)
    assert [m.recipients for m in smtp_sink.wait_for(1)] == [("b@c.example",)]
    second = run_pass(app)
    assert second.processed.quarantined == 1
    assert run_pass(app).processed.failed == 0, "quarantined mail is not retried by itself"

    listing = io.StringIO()
    list_quarantined(app, True, listing)
    assert '"subject": "boom goes the printer"' in listing.getvalue()
    assert "ZeroDivisionError" in listing.getvalue() or "division" in listing.getvalue()

    monkeypatch.setattr(process, "apply_message", real)  # the bug fixed
    fixed = harness.app()
    assert retry_quarantined(fixed, [], True, io.StringIO()) == 0
    assert run_pass(fixed).processed.created == 1
    assert count(fixed, Ticket) == 2
    assert count(fixed, InboundMessage, InboundMessage.state == "quarantined") == 0


def test_oversize_attachment_is_listed_as_skipped_never_dropped_silently(
    harness: Harness, imap_server: EmbeddedImapServer
) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "A <a@c.example>", "support@shop.example", "Logs"
    msg.set_content("The logs are attached.\n")
    msg.add_attachment(
        b"x" * 3_000_000, maintype="application", subtype="octet-stream", filename="huge.log"
    )
    msg.add_attachment(b"small", maintype="text", subtype="plain", filename="note.txt")
    imap_server.append(msg.as_bytes())
    app = harness.app(tickets={"max_attachment_size": "1MB"})

    run_pass(app)

    with app.sessions() as session:
        stored = {
            a.filename: (a.storage, a.size, a.data is None)
            for a in session.scalars(select(AttachmentRecord))
        }
        skipped = session.scalars(
            select(Event.data).where(Event.type == "attachment_skipped")
        ).all()
    assert stored == {"huge.log": ("skipped", 3_000_000, True), "note.txt": ("db", 5, False)}
    assert [s["filename"] for s in skipped] == ["huge.log"]
    assert count(app, InboundMessage, InboundMessage.size > 3_000_000) == 1, "raw bytes kept"


def test_a_mailbox_of_large_mails_is_fetched_and_processed_a_few_at_a_time(
    harness: Harness, imap_server: EmbeddedImapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scaled down: a budget of 700 kB against mails of 300 kB, as 16 MB against 6 MB scans.
    monkeypatch.setattr(fetch, "BATCH_BYTES", 700_000)
    monkeypatch.setattr(process, "BATCH_BYTES", 700_000)
    imap_server.append_many(
        mail(f"C{n} <c{n}@customers.example>", f"Scan {n}", "x" * 300_000) for n in range(5)
    )
    app = harness.app()
    box = app.config.mailbox[0]
    stop = iter([False, True])  # asked before each fetch batch: stop after the first
    with ImapMailbox(imap_settings(box)) as conn:
        fetch_mailbox(app, box, conn, stopping=lambda: next(stop))
    assert count(app, InboundMessage) == 2, "one fetch of what fits in the budget"
    with ImapMailbox(imap_settings(box)) as conn:
        assert fetch_mailbox(app, box, conn).stored == 3  # the rest, where it stopped

    batch = process._claim(app, set())
    assert len(batch) == 2, "one processing batch of what fits in the budget"
    report = run_pass(app)
    assert report.processed.created == 5 and count(app, Ticket) == 5


@pytest.mark.slow
def test_a_thousand_messages_arrive_in_batches(
    harness: Harness, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append_many(
        mail(f"Customer {i} <c{i}@customers.example>", f"Question {i}") for i in range(1000)
    )
    # One domain, no trusted MTA: only limits this high let every acknowledgement go.
    app = harness.app(
        mailbox=[mailbox(imap_server, batch_size=150)],
        tickets={"ack_domain_limit_per_hour": 1000, "ack_mailbox_limit_per_hour": 1000},
    )

    report = run_pass(app)

    assert report.fetched == {"support": 1000}
    assert report.processed.created == 1000
    assert count(app, Ticket) == 1000
    assert report.sent.sent == 1000
    assert imap_server.messages("INBOX") == []
