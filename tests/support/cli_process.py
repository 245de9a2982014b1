"""`mailbridge` commands in a process of their own, against a configuration whose IMAP
password comes from MB_CLI_IMAP_PASSWORD; `run` can stop the process at a crash point
(mailbridge.faults)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from mailbridge.db.models import Event
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.faults import CRASH_ENV
from tests.support.builders import write_config_file

SECRET = "imap-password-for-cli-test"


@pytest.fixture
def imap_server() -> Iterator[EmbeddedImapServer]:
    """The shared fixture's server, with a password the tests can look for in the logs; a
    test module imports it explicitly, in place of the one in tests/conftest.py."""
    with EmbeddedImapServer(password=SECRET) as server:
        yield server


def write_config(
    tmp_path: Path,
    imap: EmbeddedImapServer,
    smtp: SmtpSink,
    db_url: str,
    templates_dir: Path | None = None,
) -> Path:
    return write_config_file(
        tmp_path, imap, smtp, db_url, password_env="MB_CLI_IMAP_PASSWORD", templates=templates_dir
    )


def run(config: Path, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MB_CLI_IMAP_PASSWORD": SECRET}
    env.pop(CRASH_ENV, None)
    if crash_at:
        env[CRASH_ENV] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "mailbridge", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def mailbridge(
    config: Path | None, *args: str, stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """`mailbridge [--config CONFIG] ARGS…` as bytes in and out, for output contracts."""
    command = [sys.executable, "-m", "mailbridge"]
    if config is not None:
        command += ["--config", str(config)]
    env = {**os.environ, "MB_CLI_IMAP_PASSWORD": SECRET}
    return subprocess.run(
        [*command, *args], input=stdin, capture_output=True, env=env, timeout=timeout, check=False
    )


@pytest.fixture
def config(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, database_url: str
) -> Path:
    """A configuration for the test's embedded servers and database."""
    return write_config(tmp_path, imap_server, smtp_sink, database_url)


def general_events(database_url: str) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) of every event about no ticket a command wrote, in order."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            query = select(Event.type, Event.data).where(Event.ticket_id.is_(None))
            return [(t, d) for t, d in connection.execute(query.order_by(Event.id))]
    finally:
        engine.dispose()
