"""FAQ answers in the acknowledgement (pymap + aiosmtpd, SQLite and PostgreSQL): a question
the FAQ folder answers gets the best entries under "While you wait, this may help" and the
ticket records what was offered; an unrelated question, or no `[faq] dir`, changes nothing.
"""

from __future__ import annotations

import asyncio
import email
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.db.models import Event, Outbox
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.service.daemon import Daemon
from tests.support.builders import mail, make_config

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

ENTRIES = {
    "close-account.md": """---
title: How do I close my account?
keywords: [close account, cancel account, delete account]
language: en
---
To **close** your account, open *Settings*, choose [Account](https://bank.example/account)
and press `Close account`. Any <balance> & savings go to your linked bank account.
""",
    "chiudere-conto.md": """---
title: Come chiudo il mio conto?
keywords: [chiudere conto, chiusura conto, estinzione]
language: it
---
Per **chiudere** il conto apra *Impostazioni*, scelga "Conto" e prema `Chiudi conto`.
Il saldo residuo viene trasferito sul suo conto collegato.
""",
    "shipping.md": """---
title: When will my order arrive?
keywords: [delivery, shipping, tracking]
language: en
---
Orders ship within two working days; the tracking number is under *Orders*.
""",
}

CLOSE_EN = (
    "Closing my account",
    "Hello,\nI would like to close my account with you. How do I do that?\n\nAda\n",
)
CLOSE_IT = (
    "Chiusura conto",
    "Buongiorno,\nvorrei chiudere il mio conto presso di voi. Come devo fare?\n\nGrazie, Ada\n",
)
UNRELATED = (
    "Invoice address wrong",
    "Hello,\nthe invoice shows my old street address. "
    "Could you correct it and send it again?\n\nAda\n",
)

AppFactory = Callable[..., App]
MX = "mx.shop.example"
# The trusted MTA vouches for Ada's domain: her acknowledgement may quote her and answer her.
AUTHENTICATED = {"Authentication-Results": f"{MX}; dkim=pass header.d=customer.example"}


@pytest.fixture
def make_app(
    tmp_path: Path, database_url: str, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> Iterator[AppFactory]:
    apps: list[App] = []

    def factory(**sections: Any) -> App:
        sections.setdefault("staff", {"trusted_authserv_id": MX})
        config = make_config(
            tmp_path, database_url=database_url, imap=imap_server, smtp=smtp_sink, **sections
        )
        apps.append(build_app(config, clock=FrozenClock(START)))
        return apps[-1]

    yield factory
    for app in apps:
        app.close()


@pytest.fixture
def faq_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "faq"
    folder.mkdir()
    for name, text in ENTRIES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def acknowledge(
    app: App, imap_server: EmbeddedImapServer, question: tuple[str, str]
) -> tuple[EmailMessage, list[dict[str, Any]]]:
    """Deliver one customer mail; its acknowledgement and the ticket's faq_offered events."""
    subject, body = question
    imap_server.append(mail("Ada <ada@customer.example>", subject, body, headers=AUTHENTICATED))
    asyncio.run(Daemon(app).run_once())
    with app.sessions() as session:
        raw = session.scalars(select(Outbox.raw).where(Outbox.kind == "ack")).one()
        offered = session.scalars(select(Event.data).where(Event.type == "faq_offered")).all()
    message = email.message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    return message, list(offered)


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_a_question_the_faq_answers_gets_the_answer_and_an_event(
    make_app: AppFactory, faq_dir: Path, imap_server: EmbeddedImapServer
) -> None:
    app = make_app(faq={"dir": str(faq_dir)})
    message, offered = acknowledge(app, imap_server, CLOSE_EN)
    text, html = parts(message)

    assert "While you wait, this may help:" in text
    assert "* How do I close my account?" in text
    # The Markdown marks are gone; the link keeps its target.
    assert (
        "To close your account, open Settings, choose Account (https://bank.example/account)"
    ) in text
    assert "**" not in text and "`" not in text
    assert "When will my order arrive?" not in text
    # The block sits after the acknowledgement proper and before the quoted message.
    assert text.index("explain everything again") < text.index("While you wait")
    assert text.index("While you wait") < text.index("You wrote:")
    assert "<p>While you wait, this may help:</p>" in html
    assert "How do I close my account?</h3>" in html
    assert "Any &lt;balance&gt; &amp; savings" in html

    assert len(offered) == 1
    assert [item["file"] for item in offered[0]["offered"]] == ["close-account.md"]
    assert 0 < offered[0]["offered"][0]["score"] <= 1


def test_an_unrelated_question_gets_no_block_and_no_event(
    make_app: AppFactory, faq_dir: Path, imap_server: EmbeddedImapServer
) -> None:
    app = make_app(faq={"dir": str(faq_dir)})
    message, offered = acknowledge(app, imap_server, UNRELATED)
    text, html = parts(message)

    assert "While you wait" not in text and "While you wait" not in html
    assert offered == []


def test_without_a_faq_folder_the_acknowledgement_is_unchanged(
    make_app: AppFactory, imap_server: EmbeddedImapServer
) -> None:
    app = make_app()
    assert app.faq is None
    message, offered = acknowledge(app, imap_server, CLOSE_EN)
    text, html = parts(message)

    assert "Thank you for writing to" in text
    assert "While you wait" not in text and "While you wait" not in html
    assert "close my account?</h3>" not in html
    assert offered == []


def test_an_italian_question_gets_the_italian_answer_and_heading(
    make_app: AppFactory, faq_dir: Path, imap_server: EmbeddedImapServer
) -> None:
    app = make_app(faq={"dir": str(faq_dir)})
    message, offered = acknowledge(app, imap_server, CLOSE_IT)
    text, html = parts(message)

    assert "Nel frattempo, forse questo può aiutare:" in text
    assert "* Come chiudo il mio conto?" in text
    assert "Per chiudere il conto apra Impostazioni" in text
    assert "How do I close my account?" not in text
    assert "<p>Nel frattempo, forse questo può aiutare:</p>" in html
    assert [item["file"] for item in offered[0]["offered"]] == ["chiudere-conto.md"]
