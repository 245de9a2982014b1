"""`tickets merge`, `tickets unmerge` and `tickets split` as operators run them: real
processes, the real daemon on the embedded servers, SQLite and PostgreSQL."""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from tests.support.builders import mail
from tests.support.cli_process import config, imap_server, mailbridge

pytestmark = pytest.mark.integration

__all__ = ["config", "imap_server"]  # the fixtures these tests use

ADA = "ada@customer.example"


def text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    return str(body.get_content()) if body is not None else ""


def test_merge_then_unmerge_from_the_command_line(
    config: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append(mail(f"Ada <{ADA}>", "Printer on fire", message_id="<a1@customer.example>"))
    imap_server.append(mail(f"Ada <{ADA}>", "Printer again", message_id="<a2@customer.example>"))
    assert mailbridge(config, "run", "--once").returncode == 0

    itself = mailbridge(config, "tickets", "merge", "1001", "--into", "1001")
    assert itself.returncode == 1 and b"cannot be merged into itself" in itself.stderr
    merged = mailbridge(config, "tickets", "merge", "1001", "--into", "1000")
    assert merged.stdout == (
        b"ticket #1001 merged into #1000: 1 articles moved; the customer is told\n"
    ), merged.stderr
    assert mailbridge(config, "run", "--once").returncode == 0
    notices = [m for m in smtp_sink.wait_for(3) if "continues as" in text(m.message)]
    assert len(notices) == 1 and ADA in notices[0].recipients
    assert "[#1000]" in notices[0].message["Subject"]
    assert notices[0].message["In-Reply-To"] == "<a2@customer.example>"

    shown = json.loads(mailbridge(config, "tickets", "show", "1001", "--json").stdout)
    assert (shown["status"], shown["merged_into"]) == ("merged", 1000)
    assert shown["events"][-1]["type"] == "merged_into"
    assert shown["events"][-1]["data"]["via"] == "command line"
    listed = mailbridge(config, "tickets", "list", "--status", "merged").stdout.decode()
    assert "#1001" in listed and "#1000" not in listed

    undone = mailbridge(config, "tickets", "unmerge", "1001")
    assert undone.stdout == b"ticket #1001 taken back out of #1000; its status is new again\n"
    again = mailbridge(config, "tickets", "unmerge", "1001")
    assert again.returncode == 1 and b"#1001 is not merged" in again.stderr
    kept = json.loads(mailbridge(config, "tickets", "show", "1000", "--json").stdout)
    assert kept["merged_from"] == [] and kept["events"][-1]["type"] == "unmerged"


def test_split_from_the_command_line(
    config: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append(mail(f"Ada <{ADA}>", "Printer on fire", message_id="<a1@customer.example>"))
    imap_server.append(
        mail(
            f"Ada <{ADA}>",
            "Re: Scanner jams",
            "And the scanner jams.",
            message_id="<a2@customer.example>",
            in_reply_to="<a1@customer.example>",
        )
    )
    assert mailbridge(config, "run", "--once").returncode == 0
    before = json.loads(mailbridge(config, "tickets", "show", "1000", "--json").stdout)
    first, second = (a["id"] for a in before["articles"])

    refused = mailbridge(config, "tickets", "split", "1000", "--from-article", str(first))
    assert refused.returncode == 1 and b"would leave nothing behind" in refused.stderr
    split = mailbridge(config, "tickets", "split", "1000", "--from-article", str(second))
    assert split.stdout == (
        f"ticket #1000 split: article {second} and 0 later moved to new ticket #1001\n".encode()
    ), split.stderr

    old = json.loads(mailbridge(config, "tickets", "show", "1000", "--json").stdout)
    new = json.loads(mailbridge(config, "tickets", "show", "1001", "--json").stdout)
    assert [a["id"] for a in old["articles"]] == [first] and old["split_into"] == [1001]
    assert [a["id"] for a in new["articles"]] == [second] and new["split_from"] == 1000
    assert (new["subject"], new["requester"], new["status"]) == ("Scanner jams", ADA, "new")
    assert new["events"][-1]["data"]["via"] == "command line"

    imap_server.append(
        mail(f"Ada <{ADA}>", "Re: Scanner", "Still.", in_reply_to="<a2@customer.example>")
    )
    assert mailbridge(config, "run", "--once").returncode == 0
    later = json.loads(mailbridge(config, "tickets", "show", "1001", "--json").stdout)
    assert later["articles"][-1]["text"].strip() == "Still."
