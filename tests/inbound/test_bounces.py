"""Bounces end to end (pymap + aiosmtpd, SQLite and PostgreSQL): an acknowledgement bounces,
the report is matched to its outbox row and ticket, the address is marked bouncing, and no
acknowledgement goes to it again until it writes to us itself."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.db.models import AddressState, Event, InboundMessage, Outbox, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.service.daemon import Daemon, PassReport
from tests.support.builders import dsn, mail, make_config
from tests.support.served_app import app, app_sections, clock

pytestmark = pytest.mark.integration

__all__ = ["app", "app_sections", "clock"]  # the fixtures these tests use

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ADA = "ada@corp.example"


def make_app(
    tmp_path: Path,
    database_url: str,
    imap: EmbeddedImapServer,
    sink: SmtpSink,
    clock: FrozenClock,
    **smtp: Any,
) -> App:
    config = make_config(tmp_path, database_url=database_url, imap=imap, smtp=sink)
    if smtp:
        config = config.model_copy(update={"smtp": config.smtp.model_copy(update=smtp)})
    return build_app(config, clock=clock)


def run_pass(app: App) -> PassReport:
    return asyncio.run(Daemon(app).run_once())


def events(app: App, number: int) -> list[Event]:
    with app.sessions() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        return list(
            session.scalars(select(Event).where(Event.ticket_id == ticket.id).order_by(Event.id))
        )


def address_state(app: App, address: str) -> AddressState | None:
    with app.sessions() as session:
        return session.get(AddressState, address)


def outbox_rows(app: App) -> list[Outbox]:
    with app.sessions() as session:
        return list(session.scalars(select(Outbox).order_by(Outbox.id)))


def test_a_bounced_acknowledgement_stops_further_ones_until_the_address_writes_again(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    imap_server.append(mail(f"Ada <{ADA}>", "Printer on fire"))
    run_pass(app)
    (ack,) = smtp_sink.wait_for(1)
    assert ack.sender.startswith("support+b") and ack.sender.endswith("@shop.example")

    # 1. The acknowledgement bounces, back to its own envelope sender.
    clock.advance(timedelta(minutes=5))
    imap_server.append(dsn(ack.sender, ADA, original=ack.message))
    report = run_pass(app)

    assert report.processed.processed == 1 and report.processed.created == 0
    bounced = [e for e in events(app, 1000) if e.type == "bounced"]
    assert len(bounced) == 1
    assert bounced[0].data["matched_by"] == "return_path"
    assert bounced[0].data["marked_bouncing"] == [ADA]
    assert bounced[0].data["recipients"][0]["status"] == "5.1.1"
    (row,) = outbox_rows(app)
    assert row.state == "bounced"
    assert row.recipients is not None and row.recipients[0]["state"] == "bounced"
    state = address_state(app, ADA)
    assert state is not None and state.bouncing_since == clock.now()
    assert (state.bounce_count, state.last_status, state.last_outbox_id) == (1, "5.1.1", row.id)
    with app.sessions() as session:
        stored = session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
    assert stored[1].state == "processed" and stored[1].ticket_id == stored[0].ticket_id

    # 2. A colleague writes on Ada's behalf (answers to go to Ada): a new ticket for Ada,
    #    but the address has not written to us, so no acknowledgement goes to it.
    clock.advance(timedelta(minutes=5))
    imap_server.append(
        mail(
            "Carl <carl@corp.example>", "Ada's printer, again", headers={"Reply-To": f"Ada <{ADA}>"}
        )
    )
    assert run_pass(app).processed.created == 1
    suppressed = [e for e in events(app, 1001) if e.type == "ack_suppressed"]
    assert len(suppressed) == 1
    assert suppressed[0].data["reason"].startswith("address bouncing since 2026-11-23T09:05")
    assert len(outbox_rows(app)) == 1 and len(smtp_sink.received) == 1

    # 3. Ada writes herself: the address works after all, and she is acknowledged again.
    clock.advance(timedelta(minutes=5))
    imap_server.append(mail(f"Ada <{ADA}>", "New address book, same me"))
    run_pass(app)
    state = address_state(app, ADA)
    assert state is not None and state.bouncing_since is None
    assert state.cleared_at == clock.now()
    second = smtp_sink.wait_for(2)[1]
    assert second.recipients == (ADA,)
    assert [e.type for e in events(app, 1002)].count("ack_queued") == 1


def test_without_a_return_path_the_original_message_id_matches(
    tmp_path: Path,
    database_url: str,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    app = make_app(tmp_path, database_url, imap_server, smtp_sink, clock, verp=False)
    try:
        imap_server.append(mail(f"Ada <{ADA}>"))
        run_pass(app)
        (ack,) = smtp_sink.wait_for(1)
        assert ack.sender == "support@shop.example"
        imap_server.append(dsn("support@shop.example", ADA, original=ack.message))
        run_pass(app)
        (bounced,) = [e for e in events(app, 1000) if e.type == "bounced"]
        assert bounced.data["matched_by"] == "message_id"
        assert outbox_rows(app)[0].state == "bounced"
        assert address_state(app, ADA) is not None
    finally:
        app.close()


def test_a_forged_return_path_marks_nothing(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append(mail(f"Ada <{ADA}>"))
    run_pass(app)
    (ack,) = smtp_sink.wait_for(1)
    forged = ack.sender.split("-")[0] + "-aaaaaaaaaa@shop.example"
    imap_server.append(dsn(forged, ADA))
    report = run_pass(app)

    assert report.processed.ignored == 1
    assert outbox_rows(app)[0].state == "sent"
    assert address_state(app, ADA) is None


def test_a_delay_report_is_recorded_but_marks_nothing(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append(mail(f"Ada <{ADA}>"))
    run_pass(app)
    (ack,) = smtp_sink.wait_for(1)
    imap_server.append(dsn(ack.sender, ADA, original=ack.message, action="delayed", status="4.4.1"))
    run_pass(app)

    (report,) = [e for e in events(app, 1000) if e.type == "delivery_report"]
    assert report.data["recipients"][0]["action"] == "delayed"
    assert report.data["marked_bouncing"] == []
    assert outbox_rows(app)[0].state == "sent"
    assert address_state(app, ADA) is None
