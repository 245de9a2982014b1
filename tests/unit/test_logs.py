"""Log lines for people, for journald and for log shippers; passwords never in any."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge import logs


def record(message: str, level: int = logging.INFO, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise RuntimeError(f"inner {message}")
        except RuntimeError:
            info = sys.exc_info()
    return logging.LogRecord("mailbridge.jobs.process", level, __file__, 1, message, None, info)


@pytest.fixture(autouse=True)
def no_secrets_left_behind() -> Iterator[None]:
    yield
    logs._secrets.clear()


def test_journal_lines_carry_a_priority_and_no_timestamp() -> None:
    formatter = logs.JournalFormatter()
    assert formatter.format(record("created ticket #1000")) == (
        "<6>mailbridge.jobs.process: created ticket #1000")
    assert formatter.format(record("x", logging.WARNING)).startswith("<4>")
    assert formatter.format(record("x", logging.ERROR)).startswith("<3>")
    assert formatter.format(record("x", logging.DEBUG)).startswith("<7>")
    traceback_lines = formatter.format(record("failed", logging.ERROR, exc=True)).splitlines()
    assert len(traceback_lines) > 2
    assert all(line.startswith("<3>") for line in traceback_lines), "journald splits lines"


def test_the_journal_is_recognised_by_device_and_inode(tmp_path: Path) -> None:
    with open(tmp_path / "stderr", "w") as stream:
        status = os.fstat(stream.fileno())
        mine = f"{status.st_dev}:{status.st_ino}"
        assert logs.connected_to_journal(stream, {"JOURNAL_STREAM": mine})
        assert not logs.connected_to_journal(stream, {"JOURNAL_STREAM": "1:2"}), (
            "inherited by a process whose stderr goes elsewhere")
        assert not logs.connected_to_journal(stream, {})
        assert isinstance(logs.formatter_for("text", stream), logs.TextFormatter)
    assert not logs.connected_to_journal(io.StringIO(), {"JOURNAL_STREAM": mine})


def test_secrets_are_blotted_out_in_every_format() -> None:
    logs.hide_secrets(["imap-Pa55word", None, "abc"])
    message = "login refused for imap-Pa55word (abc)"
    for formatter in (logs.TextFormatter("%(message)s"), logs.JournalFormatter()):
        line = formatter.format(record(message, logging.ERROR, exc=True))
        assert "imap-Pa55word" not in line and "***" in line
        assert "(abc)" in line, "too short to be a secret worth hiding"
    entry = json.loads(logs.JsonFormatter().format(record(message, logging.ERROR, exc=True)))
    assert "imap-Pa55word" not in entry["message"] + entry["exception"]
    assert entry["level"] == "error" and entry["logger"] == "mailbridge.jobs.process"


def test_levels_between_the_named_ones_take_the_next_worse_priority() -> None:
    assert logs.priority(logging.INFO + 5) == 6
    assert logs.priority(logging.CRITICAL + 10) == 2
    assert logs.priority(1) == 7
