"""What the daemon says when a mailbox's server refuses it: the server's own reason, in the
log and in health, and never a cause it did not have."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from mailbridge.app import build_app
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.service.daemon import Daemon
from tests.support.builders import drive_daemon, make_config

pytestmark = pytest.mark.integration


def test_a_missing_folder_is_reported_as_what_it_is_not_as_a_refused_connection(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(tmp_path, database_url=sqlite_url, imap=imap_server, smtp=smtp_sink)
    box = config.mailbox[0].model_copy(update={"folder": "Nowhere"})
    app = build_app(config.model_copy(update={"mailbox": [box]}))
    said: list[str] = []

    async def scenario(daemon: Daemon) -> None:
        deadline = time.monotonic() + 15
        while not daemon.health.problems().get("mailbox:support", "").startswith("failing"):
            assert time.monotonic() < deadline, "the mailbox was never reported"
            await asyncio.sleep(0.05)
        said.append(daemon.health.problems()["mailbox:support"])

    try:
        with caplog.at_level(logging.ERROR, logger="mailbridge"):
            drive_daemon(app, scenario)
    finally:
        app.close()
    logged = [r.getMessage() for r in caplog.records if "mailbox support" in r.getMessage()]
    assert said and "Nowhere" in said[0] and "connection" not in said[0]
    assert logged and "Nowhere" in logged[0] and "connection" not in logged[0]
