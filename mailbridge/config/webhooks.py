"""[[webhook]]: a chat room or HTTP endpoint told of ticket events (ticket_created,
escalated, sla_breached, unhappy, resolved), in our JSON or as a Slack, Teams or Matrix
message. Its URL may carry a token (Slack, Teams), so it may come from the environment or a
file like every secret; the signing secret and Matrix's access token only do.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from mailbridge.config.values import Duration, _Section, is_loopback
from mailbridge.core.webhook_events import WebhookEvent, WebhookFormat

__all__ = ["SECRET_MIN_BYTES", "WebhookConfig", "check_url", "host_of"]

SECRET_MIN_BYTES = 16  # a shorter signing key is easier to guess than HMAC-SHA256 to break
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LONGEST_TIMEOUT = timedelta(seconds=60)
_INLINE = {"secret": "secret_env or secret_file", "token": "token_env or token_file"}


def check_url(url: str) -> str:
    """https://, or http:// to this machine only; no user name or password in it (the
    signature and Matrix's token are the credentials). Says what is wrong without
    repeating the URL, which may hold a token."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise ValueError("a URL like https://chat.example/hooks/…") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError("an https:// URL (plain http:// only to 127.0.0.1 or localhost)")
    if parts.scheme == "http" and not is_loopback(host):
        raise ValueError(
            "an https:// URL: plain http:// only to 127.0.0.1, [::1] or localhost (anyone "
            "on the way could read and change it)"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError("a URL without a user name or password in it")
    return url.strip()


def host_of(url: str) -> str:
    return urlsplit(url).hostname or ""


class WebhookConfig(_Section):
    """One [[webhook]]; `url` (or `url_env`, `url_file`) is checked again once read."""

    name: str | None = None  # default: the URL's host; shown in `outbox list` and the log
    url: str | None = Field(default=None, exclude=True, repr=False)  # may hold a token
    url_env: str | None = None
    url_file: Path | None = None
    events: tuple[WebhookEvent, ...] = Field(min_length=1)
    format: WebhookFormat = "json"
    # The HMAC-SHA256 key of the X-Mailbridge-Signature header.
    secret_env: str | None = None
    secret_file: Path | None = None
    secret: SecretStr | None = Field(default=None, exclude=True, repr=False)
    # Matrix: the access token of the account that posts to the room.
    token_env: str | None = None
    token_file: Path | None = None
    token: SecretStr | None = Field(default=None, exclude=True, repr=False)
    include_text: bool = False  # the customer's subject, name and address
    timeout: Duration = timedelta(seconds=10)
    max_attempts: int = Field(default=10, ge=1, le=100)
    give_up_after: Duration = timedelta(days=1)
    ca_file: Path | None = None  # trust this CA (PEM) instead of the system's

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, instead in _INLINE.items():
                if key in data:
                    raise ValueError(
                        f"no inline {key}: use {instead} (inline secrets leak through "
                        "backups and version control)"
                    )
        return data

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and not NAME.match(value):
            raise ValueError("a name of letters, digits, '.', '_' and '-' (at most 64)")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)

    @field_validator("events")
    @classmethod
    def _once_each(cls, value: tuple[WebhookEvent, ...]) -> tuple[WebhookEvent, ...]:
        return tuple(dict.fromkeys(value))

    @field_validator("timeout")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= LONGEST_TIMEOUT:
            raise ValueError("a duration from 1s to 60s (the send loop waits that long)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> WebhookConfig:
        sources = [k for k in ("url", "url_env", "url_file") if getattr(self, k) is not None]
        if len(sources) != 1:
            raise ValueError("one of url, url_env or url_file")
        if self.secret_env and self.secret_file:
            raise ValueError("give secret_env or secret_file, not both")
        if self.token_env and self.token_file:
            raise ValueError("give token_env or token_file, not both")
        has_token = bool(self.token_env or self.token_file)
        if self.format == "matrix" and not has_token:
            raise ValueError(
                'token_env or token_file with format = "matrix" (the access token of the '
                "account that posts to the room)"
            )
        if self.format != "matrix" and has_token:
            raise ValueError('no token_env or token_file: the token is for format = "matrix"')
        return self

    @property
    def label(self) -> str:
        """Its name: given, or the URL's host (set once the URL is read)."""
        return self.name or (host_of(self.url) if self.url else "webhook")
