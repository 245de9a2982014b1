"""Reloading inside one process: a mailbox whose settings changed reconnects with the new
ones, and keys only a restart can change keep their running values, with a warning."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from mailbridge.app import build_app
from mailbridge.config import load_config
from mailbridge.db import migrate
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.errors import MailbridgeError
from mailbridge.service.daemon import Daemon
from mailbridge.service.systemd import Service
from tests.support.builders import mail
from tests.support.daemon_process import IMAP_SECRET, free_port, imap_server, write_config

pytestmark = pytest.mark.integration

__all__ = ["imap_server"]


def test_reload_reconnects_a_changed_mailbox_and_defers_restart_only_keys(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("MB_SERVICE_IMAP_PASSWORD", IMAP_SECRET)
    nowhere = SimpleNamespace(
        host=imap_server.host, port=free_port(), username=imap_server.username
    )
    path = write_config(tmp_path, nowhere, smtp_sink, sqlite_url)  # type: ignore[arg-type]
    app = build_app(load_config(path))
    daemon = Daemon(app)
    service = Service(daemon, path)
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        running = asyncio.create_task(service.run())
        try:
            await asyncio.wait_for(daemon.ready.wait(), 30)
            assert not daemon.health.healthy
            path.write_text(path.read_text() + "\n[tickets]\nmax_attempts = -1\n")
            assert not await service.reload()
            write_config(tmp_path, imap_server, smtp_sink, f"{sqlite_url}.other")
            assert await service.reload()
            assert app.config.database_url == sqlite_url, "kept until a restart"
            await asyncio.to_thread(imap_server.append, mail("A <a@c.example>", "Hello"))
            await asyncio.to_thread(smtp_sink.wait_for, 1, 30)
            assert daemon.health.get("mailbox:support").ok  # type: ignore[union-attr]
        finally:
            daemon.stop()
            await asyncio.wait_for(running, 60)

    try:
        asyncio.run(scenario())
    finally:
        app.close()
    assert "reload rejected, the running configuration and templates stay" in caplog.text
    assert "tickets.max_attempts: expected Input should be greater than or equal to 1" in (
        caplog.text
    )
    assert "reload: database changed; the new value takes effect after a restart" in caplog.text
    assert "mailbox support: reconnecting with its new settings" in caplog.text


def test_a_service_on_a_database_behind_the_newest_revision_refuses_to_start(
    tmp_path: Path, smtp_sink: SmtpSink, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preflight reads the revision without alembic (mailbridge/db/revision.py) and
    names the command that brings the database up to date."""
    monkeypatch.setenv("MB_SERVICE_IMAP_PASSWORD", IMAP_SECRET)
    nowhere = SimpleNamespace(host="127.0.0.1", port=free_port(), username="support")
    path = write_config(tmp_path, nowhere, smtp_sink, sqlite_url)  # type: ignore[arg-type]
    app = build_app(load_config(path), migrate_now=False)
    try:
        service = Service(Daemon(app), path)
        with pytest.raises(MailbridgeError, match=r"\(empty\), this mailbridge needs 00\d\d: run"):
            asyncio.run(service._preflight())
        migrate.upgrade(app.engine)
        asyncio.run(service._preflight())  # at the newest: nothing to say
    finally:
        app.close()
