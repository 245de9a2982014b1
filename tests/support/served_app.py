"""An App served by the test's real mail servers: the embedded IMAP server (or, where a
suite's conftest says so, Dovecot) and the SMTP sink, the clock frozen at START, the
database the `database_url` fixture gives; and one daemon pass, read back from the sink.

A test module imports the `clock` and `app` fixtures by name and lists them in `__all__`;
it gives the configuration sections it needs (staff, tickets, ...) by defining an
`app_sections` fixture of its own, or imports this one, which adds none."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import ReceivedMail, SmtpSink
from mailbridge.service.daemon import Daemon, PassReport
from tests.support.builders import make_config
from tests.support.sla_world import START


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def app_sections() -> dict[str, Any]:
    """Configuration sections beyond the servers and the database: none."""
    return {}


@pytest.fixture
def app(
    tmp_path: Path,
    database_url: str,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    app_sections: dict[str, Any],
) -> Iterator[App]:
    config = make_config(
        tmp_path, database_url=database_url, imap=imap_server, smtp=smtp_sink, **app_sections
    )
    application = build_app(config, clock=clock)
    yield application
    application.close()


def run_pass(app: App) -> PassReport:
    """One daemon pass (fetch, process, send), which must go well."""
    report = asyncio.run(Daemon(app).run_once())
    assert report.ok, report
    return report


def to(sink: SmtpSink | list[ReceivedMail], address: str) -> list[ReceivedMail]:
    """The mails sent to `address`: from the sink, or from what `wait_for` returned."""
    received = sink.received if isinstance(sink, SmtpSink) else sink
    return [m for m in received if address in m.recipients]


def body(received: ReceivedMail) -> str:
    """The plain text of a mail the sink received, with plain line ends."""
    part = received.message.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")
