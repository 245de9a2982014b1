"""OAuth2 sign-in arithmetic, free of IO: where each provider's endpoints are, which scopes
IMAP and SMTP need, the SASL XOAUTH2 / OAUTHBEARER initial responses, when a token is due
for refresh, and the record kept in the token file.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

__all__ = [
    "DEVICE_CODE_GRANT",
    "Endpoints",
    "SaslFailure",
    "TokenRecord",
    "TokenSource",
    "choose_mechanism",
    "default_scopes",
    "describe_sasl_failure",
    "endpoints",
    "oauthbearer_response",
    "refresh_due",
    "refresh_margin",
    "refresh_time",
    "xoauth2_response",
]

Provider = Literal["microsoft", "google", "generic"]
Flow = Literal["device", "authorization_code", "client_credentials"]
Service = Literal["imap", "smtp"]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0"
MICROSOFT_SCOPES: Mapping[Service, str] = {
    "imap": "https://outlook.office.com/IMAP.AccessAsUser.All",
    "smtp": "https://outlook.office.com/SMTP.Send",
}
# Without it Microsoft hands out no refresh token, and the sign-in would last an hour.
MICROSOFT_OFFLINE = "offline_access"
# App-only access (client credentials): the permissions granted to the app in the tenant.
MICROSOFT_APP_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_DEVICE_URL = "https://oauth2.googleapis.com/device/code"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GOOGLE_AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_SCOPE = "https://mail.google.com/"  # IMAP and SMTP alike

# A token is refreshed when less than this is left of it, or less than this share of its
# lifetime for short-lived tokens, so no login ever presents one about to run out.
REFRESH_MARGIN = timedelta(minutes=5)
REFRESH_FRACTION = 0.1


class TokenSource(Protocol):
    """What a mail adapter needs from a sign-in: a valid access token, and a way to say
    the server refused the one it got."""

    def access_token(self) -> str:
        """A token valid for a while yet; refreshes first when it is due."""
        ...

    def invalidate(self, token: str) -> None:
        """The server refused `token`: the next access_token() gets a new one, unless
        another session has replaced it already (one refresh for several refusals)."""
        ...

    def refresh_at(self, token: str) -> datetime | None:
        """When a session that logged in with `token` should log in again; None when the
        token is not known to run out."""
        ...


@dataclass(frozen=True, slots=True)
class Endpoints:
    token_url: str
    device_authorization_url: str | None = None
    authorization_url: str | None = None  # the browser sign-in of the authorization-code flow


def endpoints(
    provider: Provider,
    *,
    tenant: str = "organizations",
    token_url: str | None = None,
    device_authorization_url: str | None = None,
    authorization_url: str | None = None,
) -> Endpoints:
    """The provider's endpoints; any URL given explicitly wins (generic has only those)."""
    if provider == "microsoft":
        base = MICROSOFT_AUTHORITY.format(tenant=tenant)
        known = Endpoints(f"{base}/token", f"{base}/devicecode", f"{base}/authorize")
    elif provider == "google":
        known = Endpoints(GOOGLE_TOKEN_URL, GOOGLE_DEVICE_URL, GOOGLE_AUTHORIZE_URL)
    else:
        if token_url is None:
            raise ValueError("a generic provider needs token_url")
        known = Endpoints(token_url)
    return Endpoints(
        token_url or known.token_url,
        device_authorization_url or known.device_authorization_url,
        authorization_url or known.authorization_url,
    )


def default_scopes(
    provider: Provider, services: Collection[Service], flow: Flow = "device"
) -> tuple[str, ...]:
    """The scopes to ask for when the configuration names none; () for generic."""
    if provider == "microsoft":
        if flow == "client_credentials":
            return (MICROSOFT_APP_SCOPE,)
        wanted = [MICROSOFT_SCOPES[s] for s in ("imap", "smtp") if s in services]
        return (*wanted, MICROSOFT_OFFLINE)
    if provider == "google":
        return (GOOGLE_SCOPE,)
    return ()


def xoauth2_response(user: str, access_token: str) -> bytes:
    """The XOAUTH2 initial client response, before base64 (Google's and Microsoft's form)."""
    return f"user={user}\x01auth=Bearer {access_token}\x01\x01".encode()


def oauthbearer_response(
    user: str, access_token: str, host: str | None = None, port: int | None = None
) -> bytes:
    """The OAUTHBEARER (RFC 7628) initial client response, before base64."""
    authzid = user.replace("=", "=3D").replace(",", "=2C")
    parts = [f"n,a={authzid},"]
    if host:
        parts.append(f"host={host}")
    if port:
        parts.append(f"port={port}")
    parts.append(f"auth=Bearer {access_token}")
    return ("\x01".join(parts) + "\x01\x01").encode()


def choose_mechanism(offered: Collection[str]) -> str | None:
    """XOAUTH2, which every provider offers, else OAUTHBEARER; None when neither is."""
    names = {name.upper() for name in offered}
    for mechanism in ("XOAUTH2", "OAUTHBEARER"):
        if mechanism in names:
            return mechanism
    return None


@dataclass(frozen=True, slots=True)
class SaslFailure:
    """What a server said when it refused a bearer token (RFC 7628 section 3.2.2)."""

    status: str | None = None
    scope: str | None = None
    raw: str = ""

    def __str__(self) -> str:
        bits = []
        if self.status:
            bits.append(f"status {self.status}")
        if self.scope:
            bits.append(f"needs scope {self.scope!r}")
        return ", ".join(bits) or self.raw


def describe_sasl_failure(challenge: bytes) -> SaslFailure | None:
    """The JSON error a server sends as a challenge before refusing a token; None if the
    challenge is empty or not that."""
    text = challenge.decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return SaslFailure(raw=text[:200])
    if not isinstance(data, dict):
        return SaslFailure(raw=text[:200])
    status, scope = data.get("status"), data.get("scope")
    return SaslFailure(
        str(status) if status is not None else None,
        str(scope) if scope is not None else None,
        text[:200],
    )


def refresh_margin(lifetime: timedelta) -> timedelta:
    """How long before expiry a token of this lifetime is refreshed."""
    return min(REFRESH_MARGIN, max(lifetime, timedelta(0)) * REFRESH_FRACTION)


def refresh_time(obtained_at: datetime, expires_at: datetime | None) -> datetime | None:
    """From when the token should be replaced; None when the server did not say when it
    runs out (it is trusted until a server refuses it)."""
    if expires_at is None:
        return None
    return expires_at - refresh_margin(expires_at - obtained_at)


def refresh_due(now: datetime, obtained_at: datetime, expires_at: datetime | None) -> bool:
    """True when the token should be replaced before it is presented again."""
    due = refresh_time(obtained_at, expires_at)
    return due is not None and now >= due


TOKEN_FILE_VERSION = 1


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """One sign-in as kept in its token file (never in the configuration, never logged).

    `client_id` and `token_url` say which registration the refresh token belongs to: a
    record made for another one is not used. `problem` is set when the provider refused
    the refresh token, so `mailbridge status` can say so without the daemon.
    """

    account: str
    client_id: str
    token_url: str
    scopes: tuple[str, ...]
    obtained_at: datetime
    access_token: str = field(default="", repr=False)
    expires_at: datetime | None = None
    refresh_token: str | None = field(default=None, repr=False)
    problem: str | None = None

    def seconds_left(self, now: datetime) -> float:
        if self.expires_at is None or not self.access_token:
            return 0.0
        return max((self.expires_at - now).total_seconds(), 0.0)

    def refresh_at(self) -> datetime | None:
        return refresh_time(self.obtained_at, self.expires_at)

    def usable(self, now: datetime) -> bool:
        return bool(self.access_token) and not refresh_due(now, self.obtained_at, self.expires_at)

    def with_problem(self, problem: str | None) -> TokenRecord:
        return replace(self, problem=problem)

    def as_json(self) -> dict[str, Any]:
        return {
            "version": TOKEN_FILE_VERSION,
            "account": self.account,
            "client_id": self.client_id,
            "token_url": self.token_url,
            "scopes": list(self.scopes),
            "obtained_at": self.obtained_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "problem": self.problem,
        }

    @classmethod
    def from_json(cls, data: object) -> TokenRecord:
        """Raises ValueError naming what is wrong with the file's content."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("version") != TOKEN_FILE_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {TOKEN_FILE_VERSION}")
        try:
            scopes = data.get("scopes") or []
            expires = data.get("expires_at")
            return cls(
                account=_text(data, "account"),
                client_id=_text(data, "client_id"),
                token_url=_text(data, "token_url"),
                scopes=tuple(str(s) for s in scopes),
                obtained_at=_aware(_text(data, "obtained_at")),
                expires_at=_aware(expires) if expires else None,
                access_token=str(data.get("access_token") or ""),
                refresh_token=data.get("refresh_token") or None,
                problem=data.get("problem") or None,
            )
        except (TypeError, KeyError) as exc:
            raise ValueError(f"malformed: {exc}") from None


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} is missing")
    return value


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return value
