"""No process outlives the daemon that started it: `mailbridge run --once` killed with
SIGKILL (a cron timeout, an operator) while its parse worker is busy with a mail that keeps
it busy leaves nothing running 5 s later, neither the worker nor what started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.exc import OperationalError

from mailbridge.db.models import InboundMessage
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from tests.hostile.rawmail import slow_html
from tests.support.builders import write_config_file

pytestmark = pytest.mark.integration

PASSWORD_ENV = "MB_ORPHANS_IMAP_PASSWORD"
GONE_WITHIN = 5.0


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                children = {int(c) for c in (task / "children").read_text().split()}
            except (OSError, ValueError):
                continue
            todo += children - found
            found |= children
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for its parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def eventually(check: Callable[[], object], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_kill_9_mid_parse_leaves_no_process_behind(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, sqlite_url: str
) -> None:
    # 3.5 MB of table rows: the parse lasts well beyond the kill and the 5 s after it.
    imap_server.append(slow_html(rows=120_000))
    config = write_config_file(
        tmp_path, imap_server, smtp_sink, sqlite_url, password_env=PASSWORD_ENV
    )
    env = {**os.environ, PASSWORD_ENV: imap_server.password}
    engine = create_engine(sqlite_url)

    def tried(times: int) -> bool:
        try:
            with engine.connect() as connection:
                return (connection.scalar(select(InboundMessage.attempts)) or 0) >= times
        except OperationalError:  # not migrated yet, or busy
            return False

    seen: set[int] = set()  # every process the daemons started, to clean up after a failure
    try:
        # Twice: the second time the message is one that was tried before.
        for attempt in (1, 2):
            daemon = subprocess.Popen(
                [sys.executable, "-m", "mailbridge", "--config", str(config), "run", "--once"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                eventually(lambda: tried(attempt), "the message to be claimed", 60)  # noqa: B023
                time.sleep(1.0)  # the worker is in the middle of it now
                started = descendants(daemon.pid)
                seen |= started
                assert daemon.poll() is None, "the parse was over before the kill"
                assert started, "no process parses the message"
                daemon.send_signal(signal.SIGKILL)
                daemon.wait(10)
                eventually(
                    lambda: not any(running(pid) for pid in started),  # noqa: B023
                    f"processes {sorted(started)} to end",
                    GONE_WITHIN,
                )
            finally:
                if daemon.poll() is None:
                    daemon.kill()
                    daemon.wait(10)
    finally:
        engine.dispose()
        for pid in seen:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
