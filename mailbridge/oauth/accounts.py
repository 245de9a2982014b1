"""Which account signs in to which OAuth2 provider how, read from the configuration: one
SignIn per mailbox with auth = "oauth2", and one for an [smtp] login of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from mailbridge.config import Config, MailboxConfig, OAuth2Config
from mailbridge.core.oauth import Endpoints, Flow, Service, default_scopes, endpoints

__all__ = [
    "SignIn",
    "sign_in_for_mailbox",
    "sign_in_for_smtp",
    "sign_ins",
]

SMTP_ACCOUNT = "smtp"


@dataclass(frozen=True)
class SignIn:
    """Everything needed to talk to the token endpoint for one signed-in account."""

    account: str  # the mailbox name, or "smtp" for an [smtp] login of its own
    username: str  # who the mail server is told signs in (XOAUTH2 user)
    provider: str
    flow: Flow
    client_id: str
    client_secret: str | None = field(repr=False)
    endpoints: Endpoints
    scopes: tuple[str, ...]
    redirect_uri: str
    is_smtp: bool = False  # [smtp]'s own sign-in (a mailbox may be called "smtp" too)

    @property
    def label(self) -> str:
        return "the SMTP login" if self.is_smtp else f"mailbox {self.account}"

    @property
    def login_command(self) -> str:
        which = "--smtp" if self.is_smtp else f"--mailbox {self.account}"
        return f"mailbridge oauth login {which}"

    @property
    def not_signed_in(self) -> str:
        return f"{self.label} is not signed in to {self.provider} yet: run {self.login_command}"

    @property
    def file_name(self) -> str:
        return "smtp.json" if self.is_smtp else f"mailbox-{self.account}.json"

    @property
    def key(self) -> str:
        """How status and the metrics name it: the mailbox name, or "[smtp]" for the
        SMTP login's own sign-in (no mailbox name has brackets, so a mailbox may be "smtp")."""
        return "[smtp]" if self.is_smtp else self.account


def sign_in_for_mailbox(config: Config, mailbox: MailboxConfig) -> SignIn | None:
    """The mailbox's sign-in; its scopes also cover SMTP when [smtp.oauth2] shares it."""
    if mailbox.oauth2 is None:
        return None
    services: set[Service] = {"imap"}
    shared = config.smtp.oauth2
    if shared is not None and shared.mailbox == mailbox.name:
        services.add("smtp")
    return _sign_in(mailbox.name, mailbox.username, mailbox.oauth2, services)


def sign_in_for_smtp(config: Config) -> SignIn | None:
    """The SMTP login's sign-in: its own, or the mailbox's it shares; None for a password."""
    oauth2 = config.smtp.oauth2
    if oauth2 is None:
        return None
    if oauth2.mailbox is not None:
        return sign_in_for_mailbox(config, config.mailbox_named(oauth2.mailbox))
    return replace(
        _sign_in(SMTP_ACCOUNT, config.smtp.username or "", oauth2, {"smtp"}), is_smtp=True
    )


def sign_ins(config: Config) -> list[SignIn]:
    """Every OAuth2 account of the configuration, each once."""
    found = [sign_in_for_mailbox(config, m) for m in config.mailbox]
    smtp = config.smtp.oauth2
    if smtp is not None and smtp.mailbox is None:
        found.append(sign_in_for_smtp(config))
    return [s for s in found if s is not None]


def _sign_in(account: str, username: str, oauth2: OAuth2Config, services: set[Service]) -> SignIn:
    assert oauth2.provider is not None and oauth2.client_id is not None  # config checked
    flow = oauth2.effective_flow
    secret = oauth2.client_secret.get_secret_value() if oauth2.client_secret else None
    scopes = (
        oauth2.scopes
        if oauth2.scopes is not None
        else default_scopes(oauth2.provider, services, flow)
    )
    return SignIn(
        account=account,
        username=username,
        provider=oauth2.provider,
        flow=flow,
        client_id=oauth2.client_id,
        client_secret=secret,
        endpoints=endpoints(
            oauth2.provider,
            tenant=oauth2.effective_tenant,
            token_url=oauth2.token_url,
            device_authorization_url=oauth2.device_authorization_url,
            authorization_url=oauth2.authorization_url,
        ),
        scopes=tuple(scopes),
        redirect_uri=oauth2.redirect_uri,
    )
