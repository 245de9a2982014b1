"""`mailbridge customer export|erase` as operators run them: real processes, SQLite and
PostgreSQL, the address given in another case than the mail wrote it."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from mailbridge.demo.imap_server import EmbeddedImapServer
from tests.support.cli_process import config, general_events, imap_server, run
from tests.support.customer_scene import plain_mail, zelda_mail

pytestmark = pytest.mark.integration

__all__ = ["config", "imap_server"]  # the fixtures these tests use


def test_export_then_erase_from_the_command_line(
    config: Path, imap_server: EmbeddedImapServer, database_url: str, tmp_path: Path
) -> None:
    imap_server.append_many(
        [zelda_mail("order 17"), plain_mail("Carol <carol@c.example>", "Carol's", "Hi.\n")]
    )
    assert run(config, "run", "--once").returncode == 0
    out = tmp_path / "zelda.zip"

    exported = run(config, "customer", "export", "Zelda <ZELDA.Q@example.COM>", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith(f"wrote {out}: 1 ticket(s), ")
    with zipfile.ZipFile(out) as archive:
        assert "index.json" in archive.namelist()
    again = run(config, "customer", "export", "zelda.q@example.com", "--out", str(out))
    assert again.returncode == 1 and "exists" in again.stderr

    dry = run(config, "customer", "erase", "ZELDA.Q@EXAMPLE.COM", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0].startswith("would change: 1 ticket(s) erased whole, the address would become")
    assert lines[1].split() == ["table", "rows"] and lines[-1] == "dry run: nothing was changed"
    tables = {line.split()[0] for line in lines[2:-1]}
    assert {"ticket", "article", "attachment", "inbound_message", "outbox", "event"} <= tables
    assert [t for t, _ in general_events(database_url)] == []

    done = run(config, "customer", "erase", "Zelda.Q@Example.com")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2:] == lines[2:-1], "what the dry run said"
    (event,) = [d for t, d in general_events(database_url) if t == "customer_erased"]
    assert "zelda" not in repr(event).lower() and event["tickets"] == 1
    assert done.stdout.splitlines()[0].endswith(f"erased-{event['pseudonym_id']}@invalid")
    second = run(config, "customer", "erase", "zelda.q@example.com")
    assert second.stdout == "nothing held about zelda.q@example.com: nothing changed\n"


def test_an_argument_that_is_no_address_is_a_usage_error(config: Path) -> None:
    done = run(config, "customer", "erase", "zelda at example")
    assert done.returncode == 2 and "invalid address value: 'zelda at example'" in done.stderr
