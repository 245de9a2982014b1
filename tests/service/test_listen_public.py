"""/healthz and /metrics off loopback: refused by `config check` unless listen_public says
so, and then served with a warning in the log at start."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from tests.support.daemon_process import (
    Daemon,
    free_port,
    healthz,
    imap_server,
    mailbridge,
    start,
    write_config,
)

pytestmark = pytest.mark.integration

__all__ = ["imap_server", "start"]  # fixtures: the password these configurations use, the daemon


def on_every_interface(config: Path, port: int, public: bool) -> None:
    text = config.read_text(encoding="utf-8")
    listen = f'listen = "0.0.0.0:{port}"' + ("\nlisten_public = true" if public else "")
    config.write_text(text.replace(f'listen = "127.0.0.1:{port}"', listen), encoding="utf-8")


def test_config_check_refuses_a_public_listen_address_without_listen_public(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, sqlite_url: str
) -> None:
    port = free_port()
    config = write_config(tmp_path, imap_server, smtp_sink, sqlite_url, listen=port)
    on_every_interface(config, port, public=False)
    result = mailbridge(config, "config", "check")
    assert result.returncode == 2
    assert (
        f'{config}: service.listen: expected a loopback address like "127.0.0.1:9187" or '
        f'"[::1]:9187": other hosts can reach 0.0.0.0, so serving /healthz and /metrics '
        f"there needs listen_public = true as well"
    ) in result.stderr


def test_with_listen_public_it_serves_and_warns_at_start(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    sqlite_url: str,
    start: Callable[..., Daemon],
) -> None:
    port = free_port()
    config = write_config(tmp_path, imap_server, smtp_sink, sqlite_url, listen=port)
    on_every_interface(config, port, public=True)
    assert mailbridge(config, "config", "check").returncode == 0
    daemon = start(config)
    daemon.wait_for_notice("READY=1")
    assert healthz(port)[0] == 200
    assert daemon.stop() == 0
    warnings = [line for line in daemon.lines if "listen_public = true" in line]
    assert len(warnings) == 1
    assert (
        f"service.listen: /healthz and /metrics are served on 0.0.0.0:{port}, where other "
        "hosts can reach them (listen_public = true)"
    ) in warnings[0]
    assert "WARNING" in warnings[0]
