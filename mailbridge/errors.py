"""The exception tree shared by every layer.

    MailbridgeError
    ├── ConfigError          bad configuration: names the file, the key and the expectation
    ├── TemplateError        a template failed to load or render
    └── DeliveryError        talking to a mail server failed
        ├── TransientError   try again later (4xx, connection lost, timeout)
        └── PermanentError   retrying will not help (5xx, authentication refused)

Adapters decide once whether a failure is transient or permanent; callers act on the class.
An error that is stored or shown (a message's last error, /healthz, status, the log) is
written by `describe_error`: the full text of some errors repeats the mail they failed on.
"""

from __future__ import annotations

import re
import traceback

ERROR_CHARS = 400  # the most an error description may take
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]+")


class MailbridgeError(Exception):
    """Base class of every error mailbridge raises on purpose."""


class ConfigError(MailbridgeError):
    """The configuration is unusable; the message says where and what was expected."""


class TemplateError(MailbridgeError):
    """A template failed to load or render."""


class DeliveryError(MailbridgeError):
    """Talking to an IMAP or SMTP server failed."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientError(DeliveryError):
    """A failure that may go away: retry with backoff."""


class PermanentError(DeliveryError):
    """A failure that will not go away by retrying."""


def describe_error(error: BaseException, limit: int = ERROR_CHARS) -> str:
    """The error as it may be stored or shown: its class and the first line of its message,
    on one line of at most `limit` characters. A database error's further lines repeat the
    statement and its parameters, which hold mail; so may the text after a long first line.
    """
    try:
        text = str(error)
    except Exception:  # noqa: BLE001 - a message that cannot be made is not worth a crash
        text = ""
    lines = text.strip().splitlines()
    name = type(error).__name__
    return one_line(f"{name}: {lines[0]}" if lines else name, limit)


def one_line(text: str, limit: int = ERROR_CHARS) -> str:
    """The first line of `text`, control characters taken out, at most `limit` characters
    (an ellipsis marks a cut): for error text stored before it was described, and for
    servers' answers."""
    lines = text.strip().splitlines()
    line = " ".join(_CONTROL.sub(" ", lines[0]).split()) if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def describe_traceback(error: BaseException) -> str:
    """A traceback of `error` and the errors it arose from, whose messages are described as
    `describe_error` does: where it failed, never what it failed on."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return "\n\nwhich led to:\n\n".join(
        "Traceback (most recent call last):\n"
        + "".join(traceback.format_tb(failure.__traceback__))
        + describe_error(failure)
        for failure in reversed(chain)
    )
