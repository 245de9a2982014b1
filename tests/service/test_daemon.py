"""The long-running daemon: IDLE delivery, reconnecting after the server drops it, and a
mailbox that fails while the others go on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from mailbridge.app import build_app
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.service import sender as sender_module
from tests.support.builders import IMAP_PASSWORD_ENV, drive_daemon, mail, make_config

pytestmark = pytest.mark.integration


def run_daemon(
    tmp_path: Path,
    imap: EmbeddedImapServer,
    smtp: SmtpSink,
    sqlite_url: str,
    scenario: Callable[[], Awaitable[None]],
    **sections: object,
) -> None:
    config = make_config(tmp_path, database_url=sqlite_url, imap=imap, smtp=smtp, **sections)
    app = build_app(config)
    try:
        drive_daemon(app, lambda _daemon: scenario())
    finally:
        app.close()


def test_daemon_reconnects_after_the_server_drops_the_connection(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, sqlite_url: str
) -> None:
    async def scenario() -> None:
        await asyncio.to_thread(imap_server.append, mail("A <a@c.example>", "Before"))
        await asyncio.to_thread(smtp_sink.wait_for, 1, 15)
        imap_server.drop_connections()
        await asyncio.to_thread(imap_server.append, mail("B <b@c.example>", "After"))
        await asyncio.to_thread(smtp_sink.wait_for, 2, 20)

    run_daemon(tmp_path, imap_server, smtp_sink, sqlite_url, scenario)
    assert [m.recipients for m in smtp_sink.received] == [("a@c.example",), ("b@c.example",)]


def test_daemon_survives_an_imap_server_outage(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, sqlite_url: str
) -> None:
    async def scenario() -> None:
        await asyncio.sleep(0.5)
        imap_server.stop()
        await asyncio.sleep(2)  # a real outage: the daemon retries with backoff meanwhile
        imap_server.start()
        await asyncio.to_thread(imap_server.append, mail())
        await asyncio.to_thread(smtp_sink.wait_for, 1, 20)

    run_daemon(tmp_path, imap_server, smtp_sink, sqlite_url, scenario)
    assert len(smtp_sink.received) == 1


def test_a_failing_mailbox_does_not_hold_up_the_others(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, sqlite_url: str
) -> None:
    good = {
        "name": "support",
        "address": "support@shop.example",
        "host": imap_server.host,
        "port": imap_server.port,
        "security": "none",
        "username": imap_server.username,
        "password_env": IMAP_PASSWORD_ENV,
    }
    broken = {**good, "name": "sales", "address": "sales@shop.example", "port": 1}

    async def scenario() -> None:
        await asyncio.to_thread(imap_server.append, mail())
        await asyncio.to_thread(smtp_sink.wait_for, 1, 15)

    run_daemon(tmp_path, imap_server, smtp_sink, sqlite_url, scenario, mailbox=[broken, good])
    assert len(smtp_sink.received) == 1


def test_mail_refused_during_an_smtp_outage_goes_as_soon_as_the_server_accepts_again(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, sqlite_url: str
) -> None:
    """The refused acknowledgement waits at least 15 s by its own retry pause; the first
    mail the server accepts again brings it forward."""

    async def scenario() -> None:
        smtp_sink.fail_always(451, "4.3.0 try again later")
        await asyncio.to_thread(imap_server.append, mail("A <a@c.example>", "During"))
        await asyncio.sleep(2)  # refused, and waiting out its retry pause
        smtp_sink.recover()
        started = time.monotonic()
        await asyncio.to_thread(imap_server.append, mail("B <b@c.example>", "After"))
        await asyncio.to_thread(smtp_sink.wait_for, 2, 10)
        assert time.monotonic() - started < 10

    run_daemon(
        tmp_path,
        imap_server,
        smtp_sink,
        sqlite_url,
        scenario,
        service={"data_dir": str(tmp_path), "outbox_interval": "1s"},
    )
    assert sorted(m.recipients for m in smtp_sink.received) == [("a@c.example",), ("b@c.example",)]


def test_a_refusing_server_is_offered_the_oldest_waiting_mail_now_and_then(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sender_module, "PROBE_EVERY", 1.0)

    async def scenario() -> None:
        smtp_sink.fail_always(451, "4.3.0 try again later")
        await asyncio.to_thread(imap_server.append, mail("A <a@c.example>", "During"))
        await asyncio.sleep(2)
        smtp_sink.recover()  # no new mail comes to find out: the probe does, in seconds
        await asyncio.to_thread(smtp_sink.wait_for, 1, 8)

    run_daemon(
        tmp_path,
        imap_server,
        smtp_sink,
        sqlite_url,
        scenario,
        service={"data_dir": str(tmp_path), "outbox_interval": "1s"},
    )
    assert [m.recipients for m in smtp_sink.received] == [("a@c.example",)]
