"""The exception tree shared by every layer.

    MailbridgeError
    ├── ConfigError          bad configuration: names the file, the key and the expectation
    ├── TemplateError        a template failed to load or render
    └── DeliveryError        talking to a mail server failed
        ├── TransientError   try again later (4xx, connection lost, timeout)
        └── PermanentError   retrying will not help (5xx, authentication refused)

Adapters decide once whether a failure is transient or permanent; jobs act on the class.
"""

from __future__ import annotations


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
