"""Logging setup: one line per event, readable by people, journald or log shippers.

Under systemd (stderr connected to the journal, as $JOURNAL_STREAM tells) lines carry no
timestamp of their own and start with a `<N>` syslog priority that journald reads. Every
configured password is blotted out of whatever is written, whichever logger wrote it, and
a traceback shows where an error arose but not the text of its message beyond a first
line (`describe_traceback`): a database error's text repeats the mail it failed on.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from mailbridge.errors import describe_traceback

if TYPE_CHECKING:
    from mailbridge.config import Config

# syslog priorities, as journald reads them from a "<N>" prefix
_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}
_MIN_SECRET = 4  # shorter "secrets" would blot out ordinary words
RETIRED_HIDDEN_FOR = 3 * 3600.0  # seconds: longer than any access token lives

# Log lines are redacted on whichever thread logs them while others add secrets: the set is
# replaced whole, under the lock, and `redact` reads one snapshot of it.
_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()  # the permanent ones: passwords, client secrets
_in_use: dict[str, frozenset[str]] = {}  # owner -> the tokens it uses now
_retired: dict[str, float] = {}  # a replaced token -> when to stop hiding it (monotonic)
_hidden: frozenset[str] = frozenset()


def hide_secrets(secrets: Iterable[str | None]) -> None:
    """Never write these strings to the log again (on any handler set up here)."""
    global _secrets
    with _lock:
        _secrets = _secrets | {s for s in secrets if s and len(s) >= _MIN_SECRET}
        _publish()


def rotate_secrets(
    owner: str, current: Iterable[str | None], now: Callable[[], float] = time.monotonic
) -> None:
    """Hide `current`, the secrets `owner` (one OAuth sign-in) uses now. The ones they
    replace stay hidden for RETIRED_HIDDEN_FOR, as a replaced access token works until it
    expires; then they are forgotten, so the list every log line is checked against stays
    short however long the daemon runs and however often tokens are refreshed."""
    moment = now()
    fresh = frozenset(s for s in current if s and len(s) >= _MIN_SECRET)
    with _lock:
        for replaced in _in_use.get(owner, frozenset()) - fresh:
            _retired[replaced] = moment + RETIRED_HIDDEN_FOR
        for token in fresh:
            _retired.pop(token, None)
        _in_use[owner] = fresh
        for token, until in list(_retired.items()):
            if until <= moment:
                del _retired[token]
        _publish()


def forget_all_secrets() -> None:
    """For tests: hide nothing."""
    global _secrets
    with _lock:
        _secrets = frozenset()
        _in_use.clear()
        _retired.clear()
        _publish()


def _publish() -> None:
    global _hidden
    _hidden = _secrets.union(*_in_use.values(), _retired)


def config_secrets(config: Config) -> list[str]:
    """The passwords and OAuth2 client secrets the configuration read."""
    logins = [*config.mailbox, config.smtp]
    found = [login.password.get_secret_value() for login in logins if login.password]
    return found + [
        login.oauth2.client_secret.get_secret_value()
        for login in logins
        if login.oauth2 is not None and login.oauth2.client_secret is not None
    ]


def redact(text: str) -> str:
    for secret in _hidden:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def priority(levelno: int) -> int:
    """The syslog priority of a logging level (between the named levels: the next worse)."""
    for level in sorted(_PRIORITY, reverse=True):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


class _Formatter(logging.Formatter):
    """Tracebacks as `describe_traceback` writes them."""

    def formatException(self, ei: Any) -> str:
        error = ei[1] if isinstance(ei, tuple) else None
        return describe_traceback(error) if error is not None else super().formatException(ei)

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info:  # a copy: another handler may have cached its own traceback text
            record = logging.makeLogRecord({**record.__dict__, "exc_text": None})
        return super().format(record)


class TextFormatter(_Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JournalFormatter(_Formatter):
    """ "<6>mailbridge.inbound.process: message …"; each line of a traceback gets the prefix,
    since journald makes an entry of every line."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in redact(super().format(record)).splitlines())


class JsonFormatter(_Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def connected_to_journal(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True when `stream` is the journal stream systemd named in $JOURNAL_STREAM
    ("device:inode"), not merely a descendant that inherited the variable."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return value == f"{status.st_dev}:{status.st_ino}"


def formatter_for(log_format: str, stream: TextIO) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    if connected_to_journal(stream):
        return JournalFormatter()  # journald stamps the time itself
    return TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")


def setup_logging(log_format: str = "text", *, verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(log_format, sys.stderr))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in (
        "alembic",
        "apscheduler",
        "aiosmtplib",
        "imapclient",
        "mail.log",
        "asyncio",
        "pymap",
    ):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
