"""Talking to an OAuth2 token endpoint through authlib: refreshing an access token, an
app-only token, a token endpoint's answer as a TokenRecord, and its failures as errors
that say what to do. Tokens never reach the log.

    OAuthError (PermanentError)   the token endpoint refused: client, secret, scope
    └── SignInRequired            no sign-in, or its refresh token was revoked or expired:
                                  a person must run `mailbridge oauth login`

authlib and requests (31 MB of the daemon's memory) are imported when a token endpoint is
first asked, so a daemon that signs in with passwords never loads them.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from mailbridge import logs
from mailbridge.clock import Clock
from mailbridge.core.oauth import TokenRecord
from mailbridge.errors import PermanentError, TransientError
from mailbridge.oauth.accounts import SignIn

if TYPE_CHECKING:
    from authlib.integrations.requests_client import OAuth2Session

__all__ = [
    "OAuthError",
    "SignInRequired",
    "client_credentials_token",
    "keep_out_of_logs",
    "record_from_answer",
    "refresh",
    "token_endpoint",
    "token_session",
]

HTTP_TIMEOUT = 30.0


class OAuthError(PermanentError):
    """The token endpoint refused a request; the message names the endpoint and why."""

    def __init__(self, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error  # the RFC 6749 error code, e.g. invalid_scope


class SignInRequired(OAuthError):
    """A person must sign in again; the message ends with the command to run."""


def token_session(sign_in: SignIn, **extra: Any) -> OAuth2Session:
    from authlib.integrations.requests_client import OAuth2Session  # see the module doc

    logs.hide_secrets([sign_in.client_secret])
    method = "client_secret_post" if sign_in.client_secret else "none"
    return OAuth2Session(
        sign_in.client_id,
        sign_in.client_secret,
        token_endpoint_auth_method=method,
        default_timeout=HTTP_TIMEOUT,
        **extra,
    )


@contextlib.contextmanager
def token_endpoint(sign_in: SignIn, action: str, url: str | None = None) -> Iterator[None]:
    """Token endpoint failures as OAuthError (refused) or TransientError (unreachable)."""
    import requests  # see the module doc
    from authlib.common.errors import AuthlibBaseError

    where = f"{sign_in.label}: {action} at {url or sign_in.endpoints.token_url}"
    try:
        yield
    except AuthlibBaseError as exc:
        error = str(exc.error or "error")
        text = _first_line(exc.description) if exc.description else ""
        hint = {
            "invalid_client": f" (check client_id {sign_in.client_id!r} and its secret)",
            "unauthorized_client": " (the app registration does not allow this flow)",
            "invalid_scope": f" (scopes asked: {' '.join(sign_in.scopes) or 'none'})",
        }
        raise OAuthError(
            f"{where}: refused: {error}{': ' + text if text else ''}{hint.get(error, '')}",
            error=error,
        ) from None
    except requests.exceptions.SSLError as exc:
        if _certificate_refused(exc):  # the certificate or host name: fixed by a person
            raise PermanentError(
                f"{where}: TLS certificate verification failed: {_first_line(str(exc))}"
            ) from None
        raise TransientError(f"{where}: TLS failed: {_first_line(str(exc))}") from None
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise TransientError(f"{where}: the server answered HTTP {status}") from None
    except requests.RequestException as exc:
        raise TransientError(f"{where}: unreachable: {type(exc).__name__}") from None
    except ValueError as exc:  # not a JSON answer: a proxy's or gateway's error page
        raise TransientError(f"{where}: not an OAuth2 answer: {_first_line(str(exc))}") from None


def _certificate_refused(exc: BaseException) -> bool:
    """Whether the certificate (or host name) was refused somewhere in the chain that
    requests and urllib3 wrap around ssl's error; other TLS failures (a handshake cut short,
    a proxy answering in plain text) pass."""
    pending: list[object] = [exc]
    seen: set[int] = set()
    while pending:
        error = pending.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ssl.SSLCertVerificationError):
            return True
        pending.extend(
            [error.__cause__, error.__context__, getattr(error, "reason", None), *error.args]
        )
    return False


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit] + "…"


def record_from_answer(
    sign_in: SignIn, token: dict[str, Any], asked_at: datetime, previous: TokenRecord | None = None
) -> TokenRecord:
    """A token endpoint answer as a record; expiry counted from when it was asked for."""
    access = str(token.get("access_token") or "")
    if not access:
        raise OAuthError(
            f"{sign_in.label}: the token endpoint "
            f"{sign_in.endpoints.token_url} answered without an access_token"
        )
    lifetime = token.get("expires_in")
    expires = asked_at + timedelta(seconds=int(lifetime)) if lifetime else None
    scope = token.get("scope")
    refresh = token.get("refresh_token") or (previous.refresh_token if previous else None)
    record = TokenRecord(
        account=sign_in.account,
        client_id=sign_in.client_id,
        token_url=sign_in.endpoints.token_url,
        scopes=tuple(str(scope).split()) if scope else sign_in.scopes,
        obtained_at=asked_at,
        access_token=access,
        expires_at=expires,
        refresh_token=str(refresh) if refresh else None,
    )
    keep_out_of_logs(sign_in, record)
    return record


def keep_out_of_logs(sign_in: SignIn, record: TokenRecord) -> None:
    # By token file: the [smtp] sign-in and a mailbox named "smtp" are two owners.
    logs.rotate_secrets(f"oauth:{sign_in.file_name}", [record.access_token, record.refresh_token])


def client_credentials_token(sign_in: SignIn, clock: Clock) -> TokenRecord:
    """An app-only token (flow client_credentials); there is no refresh token to keep."""
    asked_at = clock.now()
    with token_endpoint(sign_in, "client-credentials sign-in"), token_session(sign_in) as session:
        token = session.fetch_token(
            sign_in.endpoints.token_url,
            grant_type="client_credentials",
            scope=" ".join(sign_in.scopes),
        )
    return record_from_answer(sign_in, token, asked_at)


def refresh(sign_in: SignIn, record: TokenRecord, clock: Clock) -> TokenRecord:
    """A new access token for the record's refresh token; SignInRequired when refused."""
    if not record.refresh_token:
        raise SignInRequired(
            f"{sign_in.label}: the sign-in has no refresh token: run {sign_in.login_command}"
        )
    asked_at = clock.now()
    try:
        with token_endpoint(sign_in, "token refresh"), token_session(sign_in) as session:
            token = session.refresh_token(
                sign_in.endpoints.token_url, refresh_token=record.refresh_token
            )
    except OAuthError as exc:
        if exc.error in ("invalid_grant", "interaction_required", "consent_required"):
            raise SignInRequired(
                f"{exc}. The refresh token was revoked or has expired: run {sign_in.login_command}",
                error=exc.error,
            ) from None
        raise
    return record_from_answer(sign_in, dict(token), asked_at, record)
