"""The database goes away (unreachable, or a full disk): ingest pauses with the mail left on
the IMAP server, health says so, and everything resumes by itself when it is back."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from mailbridge.adapters.imap import FetchedMessage
from mailbridge.app import App, build_app
from mailbridge.db.models import InboundMessage, Outbox
from mailbridge.db.outage import database_outage
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.inbound.fetch import store_raw
from mailbridge.inbound.process import process_pending
from mailbridge.service.daemon import Daemon
from tests.support.builders import drive_daemon, mail, make_config
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

Scenario = Callable[[Daemon], Awaitable[None]]


def run_daemon(app: App, scenario: Scenario) -> None:
    try:
        drive_daemon(app, scenario, ready=True)
    finally:
        app.close()


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def all_sent(app: App) -> bool:
    with app.sessions() as session:
        return not session.scalar(
            select(func.count()).select_from(Outbox).where(Outbox.state != "sent")
        )


def paused(daemon: Daemon) -> bool:
    state = daemon.health.get("mailbox:support")
    return state is not None and state.state == "paused" and not state.ok


def in_inbox(imap: EmbeddedImapServer, subject: str) -> bool:
    return any(f"Subject: {subject}".encode() in raw for raw in imap.messages("INBOX"))


class PageCap:
    """PRAGMA max_page_count on every new connection: SQLite answers SQLITE_FULL exactly as
    on a full disk once the file would have to grow."""

    def __init__(self, app: App) -> None:
        self.app, self.pages = app, 0
        event.listen(app.engine, "connect", self._apply)

    def _apply(self, dbapi_connection: Any, _record: Any) -> None:
        if self.pages:
            dbapi_connection.execute(f"PRAGMA max_page_count = {self.pages}")

    def fill(self) -> None:
        with self.app.engine.connect() as connection:
            self.pages = connection.execute(text("PRAGMA page_count")).scalar_one()
        self.app.engine.dispose()

    def free(self) -> None:
        self.pages = 0
        self.app.engine.dispose()


def test_a_full_disk_pauses_ingest_says_why_and_resumes_when_space_is_freed(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = build_app(
        make_config(tmp_path, database_url=sqlite_url, imap=imap_server, smtp=smtp_sink)
    )
    cap = PageCap(app)
    big = "A photo of the broken parcel follows.\n" + "x" * 76 * 4000

    async def scenario(daemon: Daemon) -> None:
        await asyncio.to_thread(imap_server.append, mail("A <a@c.example>", "Before"))
        await asyncio.to_thread(smtp_sink.wait_for, 1, 15)
        cap.fill()
        await asyncio.to_thread(imap_server.append, mail("B <b@c.example>", "Full", big))
        await until(lambda: paused(daemon), 15, "ingest to pause")

        assert not daemon.health.healthy
        assert "disk is full" in daemon.health.problems()["mailbox:support"]
        assert await asyncio.to_thread(in_inbox, imap_server, "Full"), "left on the server"
        assert len(smtp_sink.received) == 1

        cap.free()
        await asyncio.to_thread(smtp_sink.wait_for, 2, 20)
        await until(lambda: not paused(daemon), 5, "ingest to resume")

    with caplog.at_level(logging.INFO, logger="mailbridge"):
        run_daemon(app, scenario)

    assert [m.recipients for m in smtp_sink.received] == [("a@c.example",), ("b@c.example",)]
    paused_lines = [r for r in caplog.records if "ingest paused" in r.getMessage()]
    assert len(paused_lines) == 1, "one clear line per outage, not one per retry"
    assert "disk is full" in paused_lines[0].getMessage()
    assert any("ingest resumed" in r.getMessage() for r in caplog.records)


@pytest.fixture
def proxied_postgres(postgres_url: str) -> Iterator[tuple[str, TcpProxy]]:
    url = make_url(postgres_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield url.set(host=proxy.host, port=proxy.port).render_as_string(False), proxy


@pytest.mark.postgres
def test_an_unreachable_database_pauses_ingest_and_it_resumes_without_help(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    proxied_postgres: tuple[str, TcpProxy],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, line = proxied_postgres
    app = build_app(make_config(tmp_path, database_url=url, imap=imap_server, smtp=smtp_sink))

    async def scenario(daemon: Daemon) -> None:
        await asyncio.to_thread(imap_server.append, mail("A <a@c.example>", "Before"))
        await asyncio.to_thread(smtp_sink.wait_for, 1, 15)
        await until(lambda: all_sent(app), 10, "the acknowledgement to be marked sent")
        line.cut()
        await asyncio.to_thread(imap_server.append, mail("B <b@c.example>", "During"))
        await until(lambda: paused(daemon), 15, "ingest to pause")

        assert "database" in daemon.health.problems()
        await asyncio.sleep(1)  # outage goes on: retries must leave the server copy alone
        assert await asyncio.to_thread(in_inbox, imap_server, "During")

        line.restore()
        await asyncio.to_thread(smtp_sink.wait_for, 2, 20)
        await until(lambda: daemon.health.healthy, 10, "health to recover")

    with caplog.at_level(logging.INFO, logger="mailbridge"):
        run_daemon(app, scenario)

    assert [m.recipients for m in smtp_sink.received] == [("a@c.example",), ("b@c.example",)]
    assert not in_inbox(imap_server, "During"), "fetched and moved once it was back"
    assert sum("ingest paused" in r.getMessage() for r in caplog.records) == 1


def test_a_full_disk_while_processing_sets_nothing_aside_and_counts_no_attempt(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    sqlite_url: str,
) -> None:
    config = make_config(tmp_path, database_url=sqlite_url, imap=imap_server, smtp=smtp_sink)
    app = build_app(config)
    cap = PageCap(app)
    raw = mail("B <b@c.example>", "Long story", "It began like this.\n" + "y" * 76 * 4000)
    store_raw(app, config.mailbox[0], 1, [FetchedMessage(1, raw, None)], 1)
    cap.fill()

    for _ in range(config.tickets.max_attempts + 1):  # a daemon retrying every few seconds
        with pytest.raises(OperationalError) as raised:
            process_pending(app)
        outage = database_outage(raised.value)
        assert outage is not None and outage.disk_full

    with app.sessions() as session:
        waiting = session.scalars(select(InboundMessage)).one()
        assert (waiting.state, waiting.attempts, waiting.last_error) == ("new", 0, None)
    cap.free()
    assert process_pending(app).created == 1
    app.close()
