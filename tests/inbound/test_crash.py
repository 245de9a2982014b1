"""Kill -9 at the worst moments, restart, and find every message exactly once.

The crash points (mailbridge.faults) stop the real process at an exact step, which no
timing could hit reliably: after the raw bytes are committed but before the server copy
is moved or flagged, and after a ticket is committed but before its acknowledgement is
sent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.faults import CRASH_EXIT
from tests.support.builders import mail
from tests.support.cli_process import imap_server, run, write_config

pytestmark = pytest.mark.integration

__all__ = ["imap_server"]  # the fixture, with the password the CLI configuration uses


def tickets(config: Path) -> list[dict[str, object]]:
    return list(json.loads(run(config, "tickets", "list", "--json").stdout))


def set_after(config: Path, after: str) -> None:
    text = config.read_text()
    config.write_text(
        text.replace('poll_interval = "1s"', f'poll_interval = "1s"\nafter = "{after}"')
    )


@pytest.mark.parametrize("after", ["move", "flag", "delete"])
def test_killed_between_storing_and_tidying_the_server_loses_and_repeats_nothing(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    database_url: str,
    after: str,
) -> None:
    config = write_config(tmp_path, imap_server, smtp_sink, database_url)
    set_after(config, after)
    imap_server.append_many([mail("A <a@c.example>", "One"), mail("B <b@c.example>", "Two")])

    crashed = run(config, "run", "--once", crash_at="after_store")
    assert crashed.returncode == CRASH_EXIT
    assert len(imap_server.messages("INBOX")) == 2, "the server copy is untouched"

    again = run(config, "run", "--once")
    assert again.returncode == 0, again.stderr

    assert sorted(t["subject"] for t in tickets(config)) == ["One", "Two"]
    assert len(smtp_sink.wait_for(2)) == 2
    if after in ("move", "delete"):
        assert imap_server.messages("INBOX") == [], "the interrupted after-action was finished"
    assert len(smtp_sink.received) == 2


def test_killed_after_the_ticket_commit_sends_the_acknowledgement_once(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, database_url: str
) -> None:
    config = write_config(tmp_path, imap_server, smtp_sink, database_url)
    imap_server.append(mail())

    assert run(config, "run", "--once", crash_at="after_process").returncode == CRASH_EXIT
    assert smtp_sink.received == []
    assert len(tickets(config)) == 1

    assert run(config, "run", "--once").returncode == 0
    assert run(config, "run", "--once").returncode == 0

    assert len(tickets(config)) == 1
    assert len(smtp_sink.wait_for(1)) == 1
    assert len(smtp_sink.received) == 1
