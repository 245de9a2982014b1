"""Log lines for people, for journald and for log shippers; passwords never in any."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge import logs

pytestmark = pytest.mark.unit


def record(message: str, level: int = logging.INFO, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise RuntimeError(f"inner {message}")
        except RuntimeError:
            info = sys.exc_info()
    return logging.LogRecord("mailbridge.inbound.process", level, __file__, 1, message, None, info)


@pytest.fixture(autouse=True)
def no_secrets_left_behind() -> Iterator[None]:
    yield
    logs.forget_all_secrets()


def test_journal_lines_carry_a_priority_and_no_timestamp() -> None:
    formatter = logs.JournalFormatter()
    assert formatter.format(record("created ticket #1000")) == (
        "<6>mailbridge.inbound.process: created ticket #1000"
    )
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
            "inherited by a process whose stderr goes elsewhere"
        )
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
    assert entry["level"] == "error" and entry["logger"] == "mailbridge.inbound.process"


def test_replaced_tokens_stay_hidden_while_they_may_work_then_are_forgotten() -> None:
    clock = [0.0]

    def hidden(token: str) -> bool:
        return logs.redact(f"token {token}") == "token ***"

    def rotate(owner: str, *tokens: str | None) -> None:
        logs.rotate_secrets(owner, tokens, now=lambda: clock[0])

    rotate("mailbox-support", "access-01", "refresh-1")
    rotate("smtp", "other-access-1", None)
    for n in range(2, 40):  # a server refusing tokens: a forced refresh every minute
        clock[0] += 60
        rotate("mailbox-support", f"access-{n:02}", "refresh-1")  # the refresh token is kept
    assert all(hidden(f"access-{n:02}") for n in range(2, 40)), "replaced less than 3 h ago"
    assert hidden("access-01") and hidden("refresh-1") and hidden("other-access-1")
    clock[0] += logs.RETIRED_HIDDEN_FOR
    rotate("mailbox-support", "access-40", "refresh-2")
    assert not any(hidden(f"access-{n:02}") for n in range(2, 39)) and not hidden("access-01")
    assert hidden("access-39"), "just replaced"
    assert hidden("access-40") and hidden("refresh-2") and hidden("refresh-1")
    assert hidden("other-access-1"), "another sign-in's tokens are its own"


def test_redacting_while_other_threads_add_secrets_never_fails() -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def add() -> None:
        n = 0
        while not stop.is_set():
            n = (n + 1) % 100
            logs.rotate_secrets("mailbox-support", [f"access-token-{n}"])
            logs.hide_secrets([f"password-{n}"])

    adder = threading.Thread(target=add)
    adder.start()
    try:
        for _ in range(20000):
            try:
                logs.redact("nothing secret here")
            except RuntimeError as exc:  # "Set changed size during iteration"
                errors.append(exc)
    finally:
        stop.set()
        adder.join()
    assert errors == []


def test_levels_between_the_named_ones_take_the_next_worse_priority() -> None:
    assert logs.priority(logging.INFO + 5) == 6
    assert logs.priority(logging.CRITICAL + 10) == 2
    assert logs.priority(1) == 7


HELD = "the customer's mail"


def _chained_failure() -> logging.LogRecord:
    try:
        try:
            raise ValueError(f"refused\n[parameters: ({HELD!r},)]")
        except ValueError as exc:
            raise RuntimeError(f"batch failed\nINSERT ... {HELD!r}") from exc
    except RuntimeError:
        info = sys.exc_info()
    return logging.LogRecord(
        "mailbridge.inbound.process", logging.WARNING, __file__, 1, "message 7 failed", None, info
    )


@pytest.mark.parametrize(
    "formatter",
    [logs.TextFormatter(), logs.JournalFormatter(), logs.JsonFormatter()],
    ids=["text", "journal", "json"],
)
def test_tracebacks_show_where_an_error_arose_but_not_what_it_held(
    formatter: logging.Formatter,
) -> None:
    entry = _chained_failure()
    logging.Formatter().format(entry)  # another handler (pytest's) caches its own text first

    written = formatter.format(entry)

    assert "customer" not in written
    assert "ValueError: refused" in written and "RuntimeError: batch failed" in written
    assert "_chained_failure" in written and "which led to" in written
