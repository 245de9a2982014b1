"""Forward on behalf through the whole loop: a staff member forwards a customer's mail from
Outlook to the support mailbox on a real IMAP server (pymap, Dovecot), the daemon's pass
opens the ticket for the customer, and the customer receives the acknowledgement over SMTP
(aiosmtpd); on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import pytest
from sqlalchemy import select

from mailbridge.app import App
from mailbridge.db.models import Article, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.service.daemon import Daemon
from tests.support.served_app import app, clock
from tests.support.sla_world import START
from tests.support.staff_world import ADA, ALICE, MX

pytestmark = pytest.mark.integration

__all__ = ["app", "clock"]  # the fixtures these tests use

OUTLOOK_FORWARD = """Hi team, Ada called me too: please look after her.

Alice Bianchi | Shop

________________________________
From: Ada Lovelace <ada@customer.example>
Sent: Monday, November 23, 2026 9:41 AM
To: Alice Bianchi <alice@shop.example>
Subject: Printer on fire

Hello Alice,
my printer is on fire. What now?

Ada
"""


@pytest.fixture
def app_sections() -> dict[str, Any]:
    return {
        "staff": {
            "addresses": [ALICE],
            "team_address": "team@shop.example",
            "trusted_authserv_id": MX,
            "signature_patterns": [r"^Alice Bianchi \| Shop"],
        }
    }


def forward_from_outlook() -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Alice Bianchi <{ALICE}>"
    msg["To"] = "support@shop.example"
    msg["Subject"] = "FW: Printer on fire"
    msg["Date"] = format_datetime(START)
    msg["Message-ID"] = "<fw1@shop.example>"
    msg["Authentication-Results"] = f"{MX}; dkim=pass header.d=shop.example"
    msg.set_content(OUTLOOK_FORWARD)
    return msg.as_bytes()


def test_a_staff_forward_acknowledges_the_customer_at_the_original_address(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append(forward_from_outlook())

    report = asyncio.run(Daemon(app).run_once())

    assert report.ok and report.processed.created == 1
    received = smtp_sink.wait_for(2)  # the acknowledgement, and Alice's notification
    acks = [m for m in received if m.recipients == (ADA,)]
    assert len(acks) == 1
    ack = acks[0].message
    assert ack["Auto-Submitted"] == "auto-replied" and "[#1000]" in ack["Subject"]
    assert ALICE not in acks[0].raw.decode("utf-8", "replace")
    assert [m.recipients for m in received if m is not acks[0]] == [(ALICE,)]
    with app.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert (ticket.requester_address, ticket.subject, ticket.assignee) == (
            ADA,
            "Printer on fire",
            ALICE,
        )
        kinds = session.execute(
            select(Article.author_kind, Article.internal).order_by(Article.id)
        ).all()
        assert [tuple(k) for k in kinds] == [("customer", False), ("staff", True)]
    assert imap_server.messages("INBOX") == []
