"""The daemon as systemd runs it: a real `mailbridge run` process with a NOTIFY_SOCKET this
test binds, pymap and the aiosmtpd sink. Every wait is bounded and waits for the process to
react; nothing sleeps on the wall clock to make time pass."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from mailbridge.db.models import Article, Outbox, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import ReceivedMail, SmtpSink
from tests.support.builders import mail
from tests.support.daemon_process import (
    IMAP_SECRET,
    SMTP_SECRET,
    WAIT,
    Daemon,
    eventually,
    free_port,
    healthz,
    imap_server,
    mailbridge,
    metrics,
    start,
    write_config,
)

pytestmark = pytest.mark.integration

__all__ = ["imap_server", "start"]  # fixtures: the password these configurations use, the daemon

REPO = Path(__file__).resolve().parents[2]


def own_templates(tmp_path: Path, marker: str) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(REPO / "templates", target)
    set_marker(target, marker)
    return target


def set_marker(templates: Path, marker: str) -> None:
    ack = templates / "en" / "acknowledgement.txt.j2"
    text = (REPO / "templates" / "en" / "acknowledgement.txt.j2").read_text(encoding="utf-8")
    # In the body's first line, which the full and the minimal form share.
    subject, _, body = text.partition("\n\n")
    ack.write_text(f"{subject}\n\n{marker}\n{body}", encoding="utf-8")


def body_of(received: ReceivedMail) -> str:
    part = received.message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


# --- readiness, watchdog, stopping --------------------------------------------------------


def test_ready_comes_once_every_mailbox_connected_or_failed_then_the_watchdog_is_fed(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    sqlite_url: str,
    start: Callable[..., Daemon],
) -> None:
    port = free_port()
    refused = free_port()  # nothing listens there
    sales = f"""
[[mailbox]]
name = "sales"
address = "sales@shop.example"
host = "127.0.0.1"
port = {refused}
security = "none"
username = "sales"
password_env = "MB_SERVICE_IMAP_PASSWORD"
"""
    config = write_config(
        tmp_path, imap_server, smtp_sink, sqlite_url, listen=port, extra_mailbox=sales
    )
    daemon = start(config, watchdog_usec=1_500_000)

    ready = daemon.wait_for_notice("READY=1")
    status, health = healthz(port)
    assert status == 503 and set(health["failing"]) == {"mailbox:sales"}
    assert "Connection refused" in health["failing"]["mailbox:sales"]
    support = health["components"]["mailbox:support"]
    assert support["ok"] and support["state"] in ("connected", "fetching", "idle")
    mailboxes = ready.split("STATUS=", 1)[1].split(", outbox")[0]  # "1 mailbox idle, 1 failing"
    counted = {part.split()[-1]: part.split()[0] for part in mailboxes.split(", ")}
    assert counted.pop("failing") == "1" and len(counted) == 1, mailboxes
    assert set(counted.items()) <= {("connected", "1"), ("fetching", "1"), ("idle", "1")}
    assert "outbox 0 pending" in ready and "next escalation none" in ready
    daemon.wait_for_log("ready:")  # the notice can overtake the log line on its way here
    assert daemon.log.index("mailbox support: connected") < daemon.log.index("ready:")

    first = daemon.wait_for_notice("WATCHDOG=1", after=daemon.notices.index(ready))
    daemon.wait_for_notice("WATCHDOG=1", after=daemon.notices.index(first) + 1)

    assert daemon.stop() == 0, daemon.log
    daemon.wait_for_notice("STOPPING=1")
    assert "stopped" in daemon.log


def test_sigterm_while_a_batch_is_in_flight_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    sqlite_url: str,
    start: Callable[..., Daemon],
) -> None:
    count = 300
    imap_server.append_many(
        [mail(f"C{i} <c{i}@customers.example>", f"Question {i}") for i in range(count)]
    )
    # 300 customers of one domain in a minute: only limits this high acknowledge them all.
    config = write_config(
        tmp_path,
        imap_server,
        smtp_sink,
        sqlite_url,
        tickets="ack_domain_limit_per_hour = 1000\nack_mailbox_limit_per_hour = 1000",
    )
    daemon = start(config)
    daemon.wait_for_notice("READY=1")
    daemon.wait_for_log("created ticket #1000")  # the first batch is in, more are under way

    began = time.monotonic()
    assert daemon.stop() == 0, daemon.log
    assert time.monotonic() - began < 45  # within TimeoutStopSec (60 s)
    daemon.wait_for_notice("STOPPING=1")
    assert "Traceback" not in daemon.log
    first_run = len(smtp_sink.received)
    assert first_run < count, "the stop came after all the work was done: nothing was tested"

    rest = mailbridge(config, "run", "--once")
    assert rest.returncode == 0, rest.stderr

    received = smtp_sink.wait_for(count, WAIT)
    recipients = sorted(r for m in received for r in m.recipients)
    assert recipients == sorted(f"c{i}@customers.example" for i in range(count)), (
        f"{first_run} sent before the stop"
    )
    assert len(received) == count
    assert len({m.message["Message-ID"] for m in received}) == count
    engine = create_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            assert connection.scalar(select(func.count(Ticket.id))) == count
    finally:
        engine.dispose()
    assert imap_server.messages("INBOX") == []


# --- reloading ----------------------------------------------------------------------------


def test_sighup_with_a_broken_template_keeps_the_running_set_and_says_why(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    sqlite_url: str,
    start: Callable[..., Daemon],
) -> None:
    templates = own_templates(tmp_path, "MARKER-OLD")
    config = write_config(tmp_path, imap_server, smtp_sink, sqlite_url, templates=templates)
    daemon = start(config)
    daemon.wait_for_notice("READY=1")
    imap_server.append(mail("A <a@c.example>", "First"))
    assert "MARKER-OLD" in body_of(smtp_sink.wait_for(1, WAIT)[0])

    broken = templates / "en" / "acknowledgement.txt.j2"
    broken.write_text("Subject: {{ ticket_tag }}\n\n{% if %}\n", encoding="utf-8")
    seen = len(daemon.notices)
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_for_log("reload rejected, the running configuration and templates stay")
    assert f"{broken}:3:" in daemon.log
    reloading = daemon.wait_for_notice("RELOADING=1", after=seen)
    assert "MONOTONIC_USEC=" in reloading
    daemon.wait_for_notice("READY=1", after=daemon.notices.index(reloading))

    imap_server.append(mail("B <b@c.example>", "Second"))
    assert "MARKER-OLD" in body_of(smtp_sink.wait_for(2, WAIT)[1])

    set_marker(templates, "MARKER-NEW")
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_for_log("configuration and templates from")
    imap_server.append(mail("C <c@c.example>", "Third"))
    assert "MARKER-NEW" in body_of(smtp_sink.wait_for(3, WAIT)[2])
    assert daemon.stop() == 0, daemon.log


def test_an_edited_template_is_reloaded_and_a_broken_edit_is_refused(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    sqlite_url: str,
    start: Callable[..., Daemon],
) -> None:
    templates = own_templates(tmp_path, "MARKER-OLD")
    config = write_config(tmp_path, imap_server, smtp_sink, sqlite_url, templates=templates)
    daemon = start(config)
    daemon.wait_for_notice("READY=1")

    (templates / "it" / "acknowledgement.txt.j2").write_text(
        "Subject: x\n\n{{ nonsense }}\n", encoding="utf-8"
    )
    daemon.wait_for_log("changed but are broken; the running ones stay")
    assert "unknown variable 'nonsense'" in daemon.log

    shutil.copy(
        REPO / "templates" / "it" / "acknowledgement.txt.j2",
        templates / "it" / "acknowledgement.txt.j2",
    )
    set_marker(templates, "MARKER-HOT")
    daemon.wait_for_log(f"templates in {templates} changed: reloaded")
    imap_server.append(mail("A <a@c.example>", "First"))
    assert "MARKER-HOT" in body_of(smtp_sink.wait_for(1, WAIT)[0])
    assert daemon.stop() == 0, daemon.log


# --- health and metrics -------------------------------------------------------------------


def test_healthz_follows_the_imap_server_and_metrics_match_the_database(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    sqlite_url: str,
    start: Callable[..., Daemon],
) -> None:
    port = free_port()
    config = write_config(tmp_path, imap_server, smtp_sink, sqlite_url, listen=port)
    daemon = start(config)
    daemon.wait_for_notice("READY=1")
    status, health = healthz(port)  # the poller's state moves on; that all is well does not
    assert (status, health["status"], health["failing"]) == (200, "ok", {})
    assert set(health["components"]) == {"database", "mailbox:support", "scheduler", "smtp"}
    assert all(c["ok"] for c in health["components"].values())
    imap_server.append_many(
        [
            mail("A <a@c.example>", "One"),
            mail("B <b@c.example>", "Two"),
            mail("C <c@c.example>", "Three"),
            mail("D <d@c.example>", "Out of office", headers={"Auto-Submitted": "auto-replied"}),
        ]
    )
    smtp_sink.wait_for(3, WAIT)
    engine = create_engine(sqlite_url)

    def matches_database() -> bool:
        seen = metrics(port)  # a series appears with its first sample: .get, not [ ]
        with engine.connect() as connection:
            tickets = connection.scalar(select(func.count(Ticket.id)))
            acks = connection.scalar(
                select(func.count(Outbox.id)).where(Outbox.kind == "ack", Outbox.state == "sent")
            )
            kinds = dict(
                connection.execute(
                    select(Article.kind, func.count(Article.id))
                    .where(Article.direction == "in")
                    .group_by(Article.kind)
                ).all()
            )
            pending = connection.scalar(
                select(func.count(Outbox.id)).where(Outbox.state == "pending")
            )
        return (
            acks == 3
            and kinds == {"customer": 3, "auto_reply": 1}
            and seen.get(("mailbridge_acknowledgements_sent_total", ())) == acks
            and seen.get(("mailbridge_tickets_opened_total", (("mailbox", "support"),))) == tickets
            and all(
                seen.get(
                    ("mailbridge_messages_ingested_total", (("kind", kind), ("mailbox", "support")))
                )
                == n
                for kind, n in kinds.items()
            )
            and seen.get(("mailbridge_outbox_messages", (("state", "pending"),))) == pending
            and seen.get(("mailbridge_quarantined_messages", ())) == 0
            and seen.get(("mailbridge_database_up", ())) == 1
        )

    try:
        eventually(matches_database, "/metrics to match the database")
    finally:
        engine.dispose()
    seen = metrics(port)
    assert seen[("mailbridge_oldest_unanswered_ticket_age_seconds", ())] >= 0
    polled = seen[
        (
            "mailbridge_mailbox_last_poll_timestamp_seconds",
            (("folder", "INBOX"), ("mailbox", "support")),
        )
    ]
    assert time.time() - 60 < polled <= time.time()  # the poller looked a moment ago
    assert seen[("mailbridge_send_latency_seconds_count", ())] == 3
    assert seen[("mailbridge_delivery_delay_seconds_count", (("kind", "ack"),))] == 3

    imap_server.stop()
    status, health = eventually(
        lambda: (lambda h: h if h[0] == 503 else None)(healthz(port)), "/healthz to turn unhealthy"
    )
    assert set(health["failing"]) == {"mailbox:support"}
    assert health["components"]["mailbox:support"]["ok"] is False
    assert metrics(port)[("mailbridge_imap_reconnects_total", (("mailbox", "support"),))] >= 1

    imap_server.start()
    eventually(lambda: healthz(port)[0] == 200, "/healthz to recover", timeout=45)

    shown = mailbridge(config, "status", "--json")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    document = json.loads(shown.stdout)
    assert document["daemon"]["state"] == "ok"
    assert document["mailboxes"]["support"]["ingested"] == 4
    assert document["outbox"]["failed"] == 0 and document["attention"] == []
    assert daemon.stop() == 0, daemon.log


# --- logging ------------------------------------------------------------------------------


def test_no_password_appears_in_the_logs_of_a_full_run(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    sqlite_url: str,
    start: Callable[..., Daemon],
) -> None:
    import base64

    with SmtpSink(username="mailer", password=SMTP_SECRET) as sink:
        config = write_config(tmp_path, imap_server, sink, sqlite_url, smtp_login=True)
        imap_server.append(mail("A <a@c.example>", "One"))
        once = mailbridge(config, "-v", "run", "--once")
        assert once.returncode == 0, once.stderr
        daemon = start(config, "--log-format", "json", "-v")
        daemon.wait_for_notice("READY=1")
        imap_server.append(mail("B <b@c.example>", "Two"))
        sink.wait_for(2, WAIT)
        assert daemon.stop() == 0
    logs = once.stderr + daemon.log
    assert "created ticket #1000" in logs and "created ticket #1001" in logs
    assert all(json.loads(line)["message"] for line in daemon.lines)
    for secret in (IMAP_SECRET, SMTP_SECRET):
        encodings = {
            secret,
            base64.b64encode(secret.encode()).decode(),
            base64.b64encode(f"\0mailer\0{secret}".encode()).decode(),
        }
        for leaked in encodings:
            assert leaked not in logs


def test_under_systemd_lines_carry_priorities_and_no_timestamps(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    sqlite_url: str,
) -> None:
    config = write_config(tmp_path, imap_server, smtp_sink, sqlite_url)
    imap_server.append(mail("A <a@c.example>", "One"))
    with open(tmp_path / "journal", "w+") as journal:
        status = os.fstat(journal.fileno())
        env = {
            **os.environ,
            "MB_SERVICE_IMAP_PASSWORD": IMAP_SECRET,
            "JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}",
        }
        done = subprocess.run(
            [sys.executable, "-m", "mailbridge", "--config", str(config), "run", "--once"],
            stderr=journal,
            env=env,
            timeout=120,
            check=False,
        )
        journal.seek(0)
        lines = journal.read().splitlines()
    assert done.returncode == 0
    assert any(line.startswith("<6>mailbridge.inbound.process: message ") for line in lines)
    assert all(line[:3] in ("<6>", "<4>", "<3>") for line in lines), lines
    assert not any(line[3:7].isdigit() for line in lines), "journald adds the time itself"
