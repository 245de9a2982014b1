"""Two brands end to end (pymap + aiosmtpd, SQLite and PostgreSQL): mail to each mailbox is
acknowledged under that mailbox's From, company, signature, Message-ID domain and envelope
sender, and a bounce to either brand's per-mail return path is matched to its mail."""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import select

from mailbridge.app import App
from mailbridge.cli.templates import preview_template
from mailbridge.core.bounce import find_return_path
from mailbridge.db.models import Event, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from tests.support.builders import IMAP_PASSWORD_ENV, dsn, mail
from tests.support.served_app import app, body, clock, run_pass, to

pytestmark = pytest.mark.integration

__all__ = ["app", "clock"]  # the fixtures these tests use

SIGNATURE = "{{ company_name }} | via Roma 1, Milano | ticket {{ ticket_tag }}"


@pytest.fixture
def app_sections(imap_server: EmbeddedImapServer) -> dict[str, Any]:
    served = {
        "host": imap_server.host,
        "port": imap_server.port,
        "security": "none",
        "username": imap_server.username,
        "password_env": IMAP_PASSWORD_ENV,
    }
    return {
        "mailbox": [
            {"name": "support", "address": "support@shop.example", **served},
            {
                "name": "beta",
                "address": "inbox@beta.example",
                "folder": "Beta",
                "processed_folder": "Beta-done",
                "from": "Beta Help <help@beta.example>",
                "company": "Beta Bikes",
                "signature": SIGNATURE,
                **served,
            },
        ]
    }


def test_each_mailbox_acknowledges_under_its_own_brand(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append(mail("Ada <ada@corp.example>", "Printer on fire"))
    imap_server.append(
        mail("Bob <bob@corp.example>", "Bent wheel", to="inbox@beta.example"), folder="Beta"
    )
    run_pass(app)
    received = smtp_sink.wait_for(2)
    (house,) = to(received, "ada@corp.example")
    (beta,) = to(received, "bob@corp.example")

    assert house.message["From"] == "Shop Support <support@shop.example>"
    assert house.sender.startswith("support+b") and house.sender.endswith("@shop.example")
    assert house.message["Message-ID"].endswith("@shop.example>")
    assert "-- \n" not in body(house) and "Beta" not in body(house)

    assert beta.message["From"] == "Beta Help <help@beta.example>"
    assert beta.message["Reply-To"] == "Beta Help <inbox@beta.example>"
    assert beta.sender.startswith("inbox+b") and beta.sender.endswith("@beta.example")
    assert beta.message["Message-ID"].endswith("@beta.example>")
    assert beta.message["X-Loop"] == "mailbridge@beta.example"
    text = body(beta)
    assert "Beta Bikes has received a message" in text  # a minimal acknowledgement
    assert "shop.example" not in text
    assert text.endswith("-- \nBeta Bikes | via Roma 1, Milano | ticket [#1001]\n")

    # A bounce to each brand's return path is matched to the very mail it is about.
    imap_server.append(dsn(house.sender, "ada@corp.example"))
    imap_server.append(dsn(beta.sender, "bob@corp.example"), folder="Beta")
    run_pass(app)
    with app.sessions() as session:
        bounced = session.scalars(select(Event).where(Event.type == "bounced")).all()
    matched = {e.data["outbox_id"]: e.data["matched_by"] for e in bounced}
    expected = {find_return_path([m.sender]) for m in (house, beta)}
    assert matched == {token.outbox_id: "return_path" for token in expected if token}
    assert len(matched) == 2


def test_a_preview_with_a_ticket_of_a_mailbox_no_longer_configured_uses_the_house_brand(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append(
        mail("Bob <bob@corp.example>", "Bent wheel", to="inbox@beta.example"), folder="Beta"
    )
    run_pass(app)
    with app.transaction() as session:
        ticket = session.scalars(select(Ticket)).one()
        number = ticket.number
        ticket.mailbox = "retired"  # the mailbox was renamed in the configuration since

    out = io.StringIO()
    assert preview_template(app.config, "acknowledgement", number, None, out) == 0

    assert "Bent wheel" in out.getvalue() and f"#{number}" in out.getvalue()
    assert "Beta Bikes" not in out.getvalue()
    out = io.StringIO()
    assert preview_template(app.config, "closed", number, None, out, mailbox="beta") == 0
    assert "Beta Bikes | via Roma 1" in out.getvalue()
