"""Kill -9 after the SMTP server accepted a mail but before the row says so: the restarted
daemon sends the same bytes with the same Message-ID once more, and never a new message."""

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


def outbox(config: Path) -> list[dict[str, object]]:
    return list(json.loads(run(config, "outbox", "list", "--json").stdout))


def test_killed_between_acceptance_and_marking_sends_at_most_one_identical_duplicate(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, database_url: str
) -> None:
    config = write_config(tmp_path, imap_server, smtp_sink, database_url)
    imap_server.append(mail("Ada <ada@corp.example>", "Printer on fire"))

    crashed = run(config, "run", "--once", crash_at="after_smtp_accept")
    assert crashed.returncode == CRASH_EXIT, crashed.stderr
    (first,) = smtp_sink.wait_for(1)
    (row,) = outbox(config)
    assert (row["state"], row["attempts"]) == ("pending", 0), "the acceptance was not recorded"

    for _ in range(2):
        again = run(config, "run", "--once")
        assert again.returncode == 0, again.stderr

    received = smtp_sink.wait_for(2)
    assert len(received) == 2, "exactly one duplicate"
    duplicate = received[1]
    assert duplicate.raw == first.raw
    assert duplicate.message["Message-ID"] == first.message["Message-ID"]
    assert first.message["Message-ID"] == f"<{row['message_id']}>"
    assert (duplicate.sender, duplicate.recipients) == (first.sender, first.recipients)
    (row,) = outbox(config)
    assert (row["state"], row["attempts"]) == ("sent", 1)
