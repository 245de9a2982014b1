"""The mail accounts: the [[mailbox]] folders to watch, the [smtp] login, and how either
signs in (a password from the environment or a file, or OAuth2).
"""

from __future__ import annotations

import re
from datetime import timedelta
from email.utils import getaddresses
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PrivateAttr, SecretStr, model_validator

from mailbridge.config.values import Duration, EmailAddress, Security, _Section

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def _mail_sender(value: str | None) -> str | None:
    """A From value, "Name <address>" or a bare address: one address, no line breaks.

    Checked here so a brand can never put a second header, or a second sender, in its From.
    """
    if value is None:
        return None
    if _CONTROL.search(value):
        raise ValueError('a sender like "Acme Support <help@acme.example>" on one line')
    found = getaddresses([value])
    if len(found) != 1 or not _ADDRESS.match(found[0][1]):
        raise ValueError('one sender like "Acme Support <help@acme.example>" or help@acme.example')
    return value


def _one_line(value: str | None) -> str | None:
    if value is not None and (_CONTROL.search(value) or not value.strip()):
        raise ValueError("a name on one line, without control characters")
    return value


def _template_dir(value: Path) -> Path:
    if not value.is_dir():
        raise ValueError(f"a directory of templates; {value} is not one")
    return value


MailSender = Annotated[str, AfterValidator(_mail_sender)]
TemplateDir = Annotated[Path, AfterValidator(_template_dir)]
OneLine = Annotated[str, AfterValidator(_one_line)]


class _Credentials(_Section):
    """A login whose password comes from an environment variable or a file, never inline;
    or, with auth = "oauth2", an OAuth2 sign-in described by its `oauth2` table."""

    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    password: SecretStr | None = Field(default=None, exclude=True, repr=False)
    auth: Literal["password", "oauth2"] = "password"
    oauth2: OAuth2Config | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_inline_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError(
                "no inline password: use password_env or password_file (inline secrets leak "
                "through backups and version control)"
            )
        return data

    @model_validator(mode="after")
    def _one_secret_source(self) -> _Credentials:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        if self.auth == "oauth2":
            if self.oauth2 is None:
                raise ValueError('an oauth2 table (provider, client_id, ...) with auth = "oauth2"')
            if self.password_env or self.password_file:
                raise ValueError(
                    'no password_env or password_file with auth = "oauth2": it '
                    "signs in without a password"
                )
        elif self.oauth2 is not None:
            raise ValueError(
                'auth = "oauth2" with an oauth2 table (or no oauth2 table, to '
                "log in with a password)"
            )
        return self


_LOOPBACK_HTTP = re.compile(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/|$)")
_TENANTS_FOR_PEOPLE = ("common", "organizations", "consumers")


def _endpoint_url(value: str | None) -> str | None:
    if value is not None and not (value.startswith("https://") or _LOOPBACK_HTTP.match(value)):
        raise ValueError("an https:// URL (plain http:// only to 127.0.0.1 or localhost)")
    return value


EndpointUrl = Annotated[str, AfterValidator(_endpoint_url)]


class OAuth2Config(_Section):
    """How a mailbox, or the SMTP login, signs in with OAuth2 (auth = "oauth2").

    The refresh token lives in the data directory (`mailbridge oauth login`), never here.
    [smtp.oauth2] may instead name a mailbox (`mailbox = "support"`) whose sign-in it
    shares: one consent then covers IMAP and SMTP.
    """

    provider: Literal["microsoft", "google", "generic"] | None = None
    client_id: str | None = Field(default=None, min_length=1)
    client_secret_env: str | None = None
    client_secret_file: Path | None = None
    client_secret: SecretStr | None = Field(default=None, exclude=True, repr=False)
    tenant: str | None = None  # Microsoft: the directory (tenant id or domain)
    # None: authorization_code for Google (its device flow refuses the Gmail scope), else
    # device. client_credentials: the app's own permission, no person signs in.
    flow: Literal["device", "authorization_code", "client_credentials"] | None = None
    scopes: tuple[str, ...] | None = None  # None: what IMAP and SMTP need at this provider
    token_url: EndpointUrl | None = None  # required for generic; overrides for the others
    device_authorization_url: EndpointUrl | None = None
    authorization_url: EndpointUrl | None = None
    # Where the browser is sent back after an authorization-code sign-in; nothing needs to
    # listen there: the operator pastes the address the browser ends up at.
    redirect_uri: str = "http://127.0.0.1:8400/"
    mailbox: str | None = None  # [smtp.oauth2] only: share this mailbox's sign-in

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: Any) -> Any:
        if isinstance(data, dict) and "client_secret" in data:
            raise ValueError("no inline client_secret: use client_secret_env or client_secret_file")
        return data

    @model_validator(mode="after")
    def _complete(self) -> OAuth2Config:
        if self.mailbox is not None:
            extra = sorted(self.model_fields_set - {"mailbox"})
            if extra:
                raise ValueError(
                    f"no other key beside mailbox = {self.mailbox!r} (the "
                    f"sign-in is that mailbox's): leave out {', '.join(extra)}"
                )
            return self
        if self.provider is None or self.client_id is None:
            raise ValueError("provider (microsoft, google or generic) and client_id")
        if self.client_secret_env and self.client_secret_file:
            raise ValueError("give client_secret_env or client_secret_file, not both")
        if self.tenant is not None and self.provider != "microsoft":
            raise ValueError('no tenant: it is for provider = "microsoft" only')
        self._check_flow()
        return self

    def _check_flow(self) -> None:
        flow, has_secret = (
            self.effective_flow,
            bool(self.client_secret_env or self.client_secret_file),
        )
        if self.provider == "generic":
            if self.token_url is None:
                raise ValueError('token_url for provider = "generic"')
            needed = {
                "device": "device_authorization_url",
                "authorization_code": "authorization_url",
            }.get(flow)
            if needed and getattr(self, needed) is None:
                raise ValueError(f'{needed} for provider = "generic" with flow = "{flow}"')
        if self.provider == "google":
            if flow == "client_credentials":
                raise ValueError(
                    'flow "authorization_code" for Google: it has no client credentials for Gmail'
                )
            if not has_secret:
                raise ValueError(
                    "client_secret_env or client_secret_file: Google's token "
                    "endpoint wants the client's secret even for installed apps"
                )
        if flow == "client_credentials":
            if not has_secret:
                raise ValueError(
                    'client_secret_env or client_secret_file with flow = "client_credentials"'
                )
            if self.provider == "microsoft" and self.effective_tenant in _TENANTS_FOR_PEOPLE:
                raise ValueError(
                    "tenant set to the directory's id or domain with flow = "
                    '"client_credentials" (not common or organizations)'
                )

    @property
    def effective_flow(self) -> Literal["device", "authorization_code", "client_credentials"]:
        if self.flow is not None:
            return self.flow
        return "authorization_code" if self.provider == "google" else "device"

    @property
    def effective_tenant(self) -> str:
        return self.tenant or "organizations"


class MailboxConfig(_Credentials):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    address: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security = "tls"
    username: str
    folder: str = "INBOX"
    after: Literal["move", "flag", "delete", "keep"] = "move"
    processed_folder: str = "Processed"
    poll_interval: Duration = timedelta(seconds=60)
    batch_size: int = Field(default=200, ge=1, le=1000)
    # Mail already waiting at the first connection: acknowledge it all, import it without
    # acknowledging what is older than backlog_age, or skip it and start from the newest.
    backlog: Literal["acknowledge", "import", "skip"] = "import"
    backlog_age: Duration = timedelta(hours=24)
    # The default language of this mailbox's replies (when the customer's language has no
    # templates, or is not known); None: [templates] language.
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")
    # The brand this mailbox answers as (config/brands.py); each None: as [smtp] and
    # [templates] say. `from` is "Name <address>"; `signature` a template (Jinja2, the
    # sandbox, the context of the mail) rendered and added to every mail to a customer;
    # `templates` a directory searched before [templates] dir, one file at a time;
    # `bounce_address` the envelope sender (default: `address` when the mailbox has its
    # own `from`, else as [smtp] says).
    from_: MailSender | None = Field(default=None, alias="from")
    company: OneLine | None = None
    signature: str | None = Field(default=None, max_length=20_000)
    templates: TemplateDir | None = None
    bounce_address: EmailAddress | None = None
    queue: str | None = None  # None: the mailbox name
    # The named [[calendar]] its tickets' business hours count in (a queue's own wins);
    # None: the default calendar.
    calendar: str | None = None
    # The [[sla]] policy its tickets get when no policy with match keys matches, in place
    # of the policy without match keys; a routing rule's then.sla_policy still wins.
    sla: str | None = None
    # How staff answer: "relay" (they reply to notifications, mailbridge sends to the
    # customer) or "observe" (they answer from this account; its sent_folder is watched).
    staff_mode: Literal["relay", "observe"] = "relay"
    sent_folder: str = "Sent"
    _sent_view: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _own_sign_in(self) -> MailboxConfig:
        if self.oauth2 is not None and self.oauth2.mailbox is not None:
            raise ValueError("oauth2.mailbox only in [smtp.oauth2]: a mailbox signs in itself")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.security == "tls" else 143)

    @property
    def effective_queue(self) -> str:
        return self.queue or self.name

    def sources(self) -> list[MailboxConfig]:
        """The folders to watch: the inbox, and in observe mode the Sent folder as a
        read-only source (never moved or flagged; only mail sent after the first look)."""
        if self.staff_mode != "observe" or self.sent_folder == self.folder:
            return [self]
        view = self.model_copy(
            update={"folder": self.sent_folder, "after": "keep", "backlog": "skip"}
        )
        view._sent_view = True
        return [self, view]

    @property
    def source_name(self) -> str:
        """Names a watched folder in logs and health: "support", "support (Sent)"."""
        return f"{self.name} ({self.folder})" if self._sent_view else self.name

    def observes_sent(self, folder: str) -> bool:
        return self.staff_mode == "observe" and folder == self.sent_folder != self.folder


class SmtpConfig(_Credentials):
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security = "starttls"
    from_: MailSender = Field(alias="from")
    timeout: Duration = timedelta(seconds=30)
    # Temporary failures are retried with growing, jittered pauses until the mail is this
    # old (or has had max_attempts tries, when set); then it is `failed`.
    give_up_after: Duration = timedelta(days=2)
    max_attempts: int | None = Field(default=None, ge=1)
    # The envelope sender, where bounces go; None: the address of `from`. It must lead to
    # one of the [[mailbox]] folders, or bounces are never seen.
    bounce_address: str | None = Field(default=None, pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    # A per-mail envelope sender, bounce_address with "+b<outbox id>-<check>", so a bounce
    # names the exact mail; the mail server must deliver plus-addresses to the base one.
    verp: bool = True

    @model_validator(mode="after")
    def _oauth_user(self) -> SmtpConfig:
        if self.oauth2 is not None and self.oauth2.mailbox is None and not self.username:
            raise ValueError('username (the account that signs in) with auth = "oauth2"')
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"tls": 465, "starttls": 587, "none": 25}[self.security]
