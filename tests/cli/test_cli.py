"""The command line as operators and scripts use it: real processes, real servers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from mailbridge.db import migrate
from mailbridge.db.engine import make_engine
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from tests.support.builders import mail
from tests.support.cli_process import SECRET, config, imap_server, mailbridge, write_config

pytestmark = pytest.mark.integration

__all__ = ["config", "imap_server"]  # the fixtures these tests use


def config_url(config: Path) -> str:
    return str(tomllib.loads(config.read_text())["database"]["url"])


def test_run_once_then_list_and_show_tickets_as_json(
    config: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append(
        mail("Ada <ada@customer.example>", "Printer on fire", message_id="<p1@customer.example>")
    )
    done = mailbridge(config, "run", "--once")
    assert done.returncode == 0, done.stderr.decode()
    assert b"created ticket #1000" in done.stderr

    listed = json.loads(mailbridge(config, "tickets", "list", "--json").stdout)
    assert len(listed) == 1
    ticket = listed[0]
    for key in (
        "number",
        "status",
        "priority",
        "subject",
        "requester",
        "created_at",
        "first_response_due_at",
        "first_responded_at",
        "escalation_level",
    ):
        assert key in ticket
    assert (ticket["number"], ticket["requester"], ticket["status"]) == (
        1000,
        "ada@customer.example",
        "new",
    )

    shown = json.loads(mailbridge(config, "tickets", "show", "1000", "--json").stdout)
    article = shown["articles"][0]
    assert (article["direction"], article["author_kind"], article["internal"]) == (
        "in",
        "customer",
        False,
    )
    assert article["message_id"] == "p1@customer.example"
    assert "printer is on fire" in article["text"]
    assert [e["type"] for e in shown["events"]] == ["created", "ack_queued"]

    outbox = json.loads(mailbridge(config, "outbox", "list", "--json").stdout)
    assert [(r["kind"], r["to"], r["state"], r["attempts"]) for r in outbox] == [
        ("ack", ["ada@customer.example"], "sent", 1)
    ]
    assert {"id", "message_id", "last_error"} <= set(outbox[0])
    assert SECRET.encode() not in done.stderr


def test_failed_outbox_row_can_be_retried(
    config: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    smtp_sink.fail_next(1, 554, "5.7.1 rejected")
    imap_server.append(mail())
    assert mailbridge(config, "run", "--once").returncode == 0
    failed = json.loads(mailbridge(config, "outbox", "list", "--state", "failed", "--json").stdout)
    assert len(failed) == 1 and "554" in failed[0]["last_error"]

    assert mailbridge(config, "outbox", "retry", str(failed[0]["id"])).returncode == 0
    assert mailbridge(config, "run", "--once").returncode == 0
    assert len(smtp_sink.wait_for(1)) == 1
    assert mailbridge(config, "outbox", "retry", "999").returncode == 1


def test_tickets_tag_adds_and_removes_tags_and_records_who(
    config: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append(mail())
    assert mailbridge(config, "run", "--once").returncode == 0

    tagged = mailbridge(config, "tickets", "tag", "1000", "--add", "Unhappy", "--add", "vip")
    assert tagged.stdout == b"ticket #1000: unhappy, vip\n", tagged.stderr
    untagged = mailbridge(
        config, "tickets", "tag", "1000", "--remove", "UNHAPPY", "--remove", "never-set"
    )
    assert untagged.stdout == b"ticket #1000: vip\n"
    again = mailbridge(config, "tickets", "tag", "1000", "--add", "vip")
    assert again.stdout == b"ticket #1000: vip (unchanged)\n"

    listed = json.loads(mailbridge(config, "tickets", "list", "--tag", "vip", "--json").stdout)
    assert [t["number"] for t in listed] == [1000]
    shown = json.loads(mailbridge(config, "tickets", "show", "1000", "--json").stdout)
    changes = [e for e in shown["events"] if e["type"] == "tags_changed"]
    assert [(e["data"]["tags_added"], e["data"]["tags_removed"]) for e in changes] == [
        (["unhappy", "vip"], []),
        ([], ["unhappy"]),
    ]
    assert {e["data"]["by"] for e in changes} == {"command line"}

    refused = mailbridge(config, "tickets", "tag", "1000", "--add", "no/slashes")
    assert refused.returncode == 2 and b"invalid tag_name value" in refused.stderr
    assert mailbridge(config, "tickets", "tag", "4242", "--add", "x").returncode == 1


def test_tickets_requester_sets_who_a_ticket_without_one_answers(
    config: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append(
        b"To: support@shop.example\r\nSubject: Parcel 4711\r\n"
        b"Message-ID: <p4711@customer.example>\r\n\r\nWhere is it?\r\n"
    )
    assert mailbridge(config, "run", "--once").returncode == 0

    shown = mailbridge(config, "tickets", "show", "1000").stdout.decode()
    assert (
        "  no requester: the mail named no sender in From, Sender, Reply-To or Return-Path;"
        " a staff member can set one with #requester ADDRESS"
    ) in shown
    refused = mailbridge(config, "tickets", "requester", "1000", "Ann ann@customer.example")
    assert refused.returncode == 2 and b"invalid address value" in refused.stderr
    done = mailbridge(config, "tickets", "requester", "1000", "Ann <Ann@Customer.example>")
    assert done.stdout == b"ticket #1000: requester Ann <ann@customer.example> (was: none)\n"
    document = json.loads(mailbridge(config, "tickets", "show", "1000", "--json").stdout)
    assert (document["requester"], document["requester_name"]) == ("ann@customer.example", "Ann")
    assert document["no_requester"] is None
    assert [e["data"] for e in document["events"] if e["type"] == "requester_changed"] == [
        {"by": "command line", "old": "", "new": "ann@customer.example", "name": "Ann"}
    ]


def test_show_unknown_ticket_is_a_runtime_error(config: Path) -> None:
    result = mailbridge(config, "tickets", "show", "4242")
    assert result.returncode == 1
    assert b"no ticket #4242" in result.stderr


def test_daemon_answers_while_running_and_stops_cleanly_on_sigterm(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, sqlite_url: str
) -> None:
    config = write_config(tmp_path, imap_server, smtp_sink, sqlite_url)
    env = {**os.environ, "MB_CLI_IMAP_PASSWORD": SECRET}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "mailbridge", "--config", str(config), "run"],
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        imap_server.append(mail())
        assert len(smtp_sink.wait_for(1, timeout=20)) == 1
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, stderr.decode()
    assert time.monotonic() - started < 15
    assert b"stopped" in stderr
    assert SECRET.encode() not in stderr


def test_parse_prints_the_json_contract_without_a_configuration(tmp_path: Path) -> None:
    path = tmp_path / "one.eml"
    path.write_bytes(mail("Ada <ada@customer.example>", "Hello", message_id="<x1@c.example>"))
    result = mailbridge(None, "parse", str(path))
    assert result.returncode == 0, result.stderr.decode()
    document = json.loads(result.stdout)
    assert document["message_id"] == "x1@c.example"
    assert document["from"] == {"name": "Ada", "address": "ada@customer.example"}
    assert document["kind"] == "customer"
    for key in (
        "to",
        "cc",
        "reply_to",
        "subject",
        "date",
        "in_reply_to",
        "references",
        "text",
        "reply_text",
        "has_html",
        "attachments",
        "language",
        "defects",
    ):
        assert key in document


def test_parse_many_files_prints_json_lines_and_keeps_going(tmp_path: Path) -> None:
    good = tmp_path / "good.eml"
    good.write_bytes(mail(headers={"Auto-Submitted": "auto-replied"}))
    broken = tmp_path / "broken.eml"
    broken.write_bytes(b"\x00\xff garbage without headers \r\n\r\n\xfe")
    result = mailbridge(None, "parse", str(good), str(broken))
    assert result.returncode == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(good), str(broken)]
    assert lines[0]["kind"] == "auto_reply"
    assert lines[1]["defects"]


def test_parse_reads_standard_input() -> None:
    result = mailbridge(None, "parse", "-", stdin=mail(subject="Via stdin"))
    assert json.loads(result.stdout)["subject"] == "Via stdin"


def test_templates_check_reports_file_and_line_and_exits_2(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, sqlite_url: str
) -> None:
    shipped = Path(__file__).resolve().parents[2] / "templates"
    own = tmp_path / "templates"
    for source in shipped.rglob("*.j2"):
        target = own / source.relative_to(shipped)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    config = write_config(tmp_path, imap_server, smtp_sink, sqlite_url, templates_dir=own)
    assert mailbridge(config, "templates", "check").returncode == 0

    broken = own / "en" / "acknowledgement.txt.j2"
    broken.write_text("Subject: Hi\n\nline two\n{% if %}\n", encoding="utf-8")
    result = mailbridge(config, "templates", "check")
    assert result.returncode == 2
    assert f"{broken}:4:".encode() in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ("{% if subject %}\nno endif\n", "endif"),
        ("Hello {{ requester_nme }}\n", "unknown variable 'requester_nme'"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}\n", "unsafe"),
        ("{{ cycler.__init__.__globals__.os }}\n", "unsafe"),
    ],
    ids=["syntax", "undefined", "escape-mro", "escape-globals"],
)
def test_templates_check_catches_each_kind_of_broken_template(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    sqlite_url: str,
    body: str,
    complaint: str,
) -> None:
    own = tmp_path / "templates"
    shutil.copytree(Path(__file__).resolve().parents[2] / "templates", own)
    good = own / "en" / "note.txt.j2"
    good.write_text("Subject: {{ ticket_tag }}\n\nfine\n", encoding="utf-8")
    bad = own / "en" / "broken.txt.j2"
    bad.write_text("Subject: {{ ticket_tag }}\n\n" + body, encoding="utf-8")
    config = write_config(tmp_path, imap_server, smtp_sink, sqlite_url, templates_dir=own)

    result = mailbridge(config, "templates", "check")

    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 2, output
    assert f"{bad}:" in output and complaint in output
    assert str(good) not in output
    assert "<class" not in output and "<module" not in output


def test_templates_preview_renders_subject_and_text(config: Path) -> None:
    result = mailbridge(config, "templates", "preview", "acknowledgement", "--lang", "it")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.startswith(b"Subject: ")
    assert mailbridge(config, "templates", "preview", "nonexistent").returncode == 2


def test_db_upgrade_reports_the_revision(config: Path) -> None:
    result = mailbridge(config, "db", "upgrade")
    assert result.returncode == 0, result.stderr.decode()
    engine = make_engine(str(config_url(config)))
    try:
        head = migrate.newest_revision()
    finally:
        engine.dispose()
    assert f"database at revision {head}".encode() in result.stdout


def test_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    result = mailbridge(tmp_path / "nope.toml", "run", "--once")
    assert result.returncode == 2
    assert b"nope.toml: no such configuration file" in result.stderr
