"""`mailbridge status`, `purge` and `db backup` as an operator runs them, on both databases."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, update

from mailbridge.db.models import InboundMessage, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from tests.support.builders import mail
from tests.support.daemon_process import free_port, imap_server, mailbridge, write_config

pytestmark = pytest.mark.integration

__all__ = ["imap_server"]  # the fixture with the password these configurations use


def test_status_reports_the_database_and_asks_for_attention_when_needed(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, database_url: str
) -> None:
    config = write_config(tmp_path, imap_server, smtp_sink, database_url)
    imap_server.append(mail("Ada <ada@c.example>", "Fine"))
    assert mailbridge(config, "run", "--once").returncode == 0

    healthy = mailbridge(config, "status")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "mailbox support: 1 message(s) (customer 1)" in healthy.stdout
    assert "outbox: 0 pending" in healthy.stdout and "1 sent" in healthy.stdout
    assert "1 unanswered" in healthy.stdout
    assert "nothing needs attention" in healthy.stdout

    smtp_sink.fail_next(1, 554, "5.7.1 rejected")
    imap_server.append(mail("Bob <bob@c.example>", "Refused"))
    assert mailbridge(config, "run", "--once").returncode == 0
    troubled = mailbridge(config, "status", "--json")
    assert troubled.returncode == 1
    document = json.loads(troubled.stdout)
    assert document["outbox"]["failed"] == 1 and document["tickets"]["unanswered"] == 2
    assert document["attention"] == [
        "1 outgoing mail(s) or webhook delivery(ies) failed: mailbridge outbox list --state failed"
    ]
    assert document["daemon"]["state"] == "unknown"


def test_status_says_when_the_daemon_does_not_answer(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, sqlite_url: str
) -> None:
    port = free_port()
    config = write_config(tmp_path, imap_server, smtp_sink, sqlite_url, listen=port)
    assert mailbridge(config, "db", "upgrade").returncode == 0
    result = mailbridge(config, "status")
    assert result.returncode == 1
    assert f"the daemon does not answer at http://127.0.0.1:{port}/healthz" in result.stdout


def test_purge_reports_what_it_removes_and_a_dry_run_removes_nothing(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, database_url: str
) -> None:
    config = write_config(tmp_path, imap_server, smtp_sink, database_url)
    assert "not set: closed tickets keep everything" in mailbridge(config, "purge").stdout
    config.write_text(config.read_text() + '\n[retention]\npurge_after = "365d"\n')
    imap_server.append_many(
        [mail("Ada <ada@c.example>", "Old"), mail("Bob <bob@c.example>", "Current")]
    )
    assert mailbridge(config, "run", "--once").returncode == 0
    engine = create_engine(database_url)
    long_ago = datetime.now(UTC) - timedelta(days=400)
    try:
        with engine.begin() as connection:
            connection.execute(
                update(Ticket)
                .where(Ticket.number == 1000)
                .values(status="closed", resolved_at=long_ago)
            )

        def raw_left() -> int:
            with engine.connect() as connection:
                return (
                    connection.scalar(
                        select(func.count()).where(func.length(InboundMessage.raw) > 0)
                    )
                    or 0
                )

        dry = mailbridge(config, "purge", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.startswith("would remove: 1 ticket(s) closed before ")
        assert "1 raw message(s)" in dry.stdout and "1 sent mail(s)" in dry.stdout
        assert raw_left() == 2

        done = mailbridge(config, "purge")
        assert done.stdout.startswith("removed: 1 ticket(s)"), done.stdout + done.stderr
        assert raw_left() == 1
        assert mailbridge(config, "purge").stdout == "nothing to remove\n"

        with engine.begin() as connection:  # spam goes whole, and is said apart
            connection.execute(
                update(Ticket).where(Ticket.number == 1001).values(status="spam", spam_at=long_ago)
            )
        dry = mailbridge(config, "purge", "--dry-run")
        assert dry.stdout.startswith("would remove: 1 spam ticket(s) marked before "), dry.stdout
        assert "1 article(s), 1 raw message(s)" in dry.stdout
        assert mailbridge(config, "purge").stdout.startswith("removed: 1 spam ticket(s)")
        with engine.connect() as connection:
            assert connection.scalars(select(Ticket.number)).all() == [1000]
    finally:
        engine.dispose()


def test_db_backup_copies_a_live_sqlite_database(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, sqlite_url: str
) -> None:
    config = write_config(tmp_path, imap_server, smtp_sink, sqlite_url)
    imap_server.append(mail())
    assert mailbridge(config, "run", "--once").returncode == 0
    target = tmp_path / "copy" / "backup.db"
    target.parent.mkdir()

    result = mailbridge(config, "db", "backup", str(target))

    assert result.returncode == 0, result.stderr
    assert "integrity ok" in result.stdout
    with sqlite3.connect(target) as copy:
        assert copy.execute("SELECT number, subject FROM ticket").fetchall() == [
            (1000, "Printer on fire")
        ]
    assert [p.name for p in target.parent.iterdir()] == ["backup.db"]
    again = mailbridge(config, "db", "backup", str(target))
    assert again.returncode == 1 and "exists already" in again.stderr


@pytest.mark.postgres
def test_db_backup_of_postgresql_prints_the_pg_dump_command(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, postgres_url: str
) -> None:
    config = write_config(tmp_path, imap_server, smtp_sink, postgres_url)
    result = mailbridge(config, "db", "backup", str(tmp_path / "dump"))
    assert result.returncode == 0, result.stderr
    database = postgres_url.rsplit("/", 1)[1]
    assert "pg_dump --format=custom" in result.stdout
    assert f"--file={tmp_path / 'dump'}" in result.stdout and database in result.stdout
