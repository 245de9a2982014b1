"""The first sign-in of an account, as `mailbridge oauth login` runs it: the device flow
(RFC 8628), the authorization-code flow with PKCE for a browser elsewhere (Google's way), and
keeping the result in the account's token file. authlib does the HTTP."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mailbridge.clock import Clock
from mailbridge.core.oauth import DEVICE_CODE_GRANT, TokenRecord
from mailbridge.oauth.accounts import SignIn
from mailbridge.oauth.endpoint import OAuthError, record_from_answer, token_endpoint, token_session
from mailbridge.oauth.tokens import TokenStore

__all__ = [
    "BrowserSignIn",
    "DeviceCode",
    "finish_browser_login",
    "finish_device_login",
    "start_browser_login",
    "start_device_login",
    "store_sign_in",
]


@dataclass(frozen=True)
class DeviceCode:
    """What the person signing in is shown (RFC 8628 section 3.2)."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int
    device_code: str = field(repr=False)


def start_device_login(sign_in: SignIn) -> DeviceCode:
    url = sign_in.endpoints.device_authorization_url
    if url is None:
        raise OAuthError(f"{sign_in.label}: no device_authorization_url for the device flow")
    with token_endpoint(sign_in, "device authorization", url), token_session(sign_in) as session:
        answer = session.post(
            url,
            withhold_token=True,
            data={"scope": " ".join(sign_in.scopes)},
            auth=session.client_auth(session.token_endpoint_auth_method),
        )
        data = session.parse_response_token(answer)
    try:
        return DeviceCode(
            user_code=str(data["user_code"]),
            # Microsoft says verification_uri; Google's older answers verification_url.
            verification_uri=str(data.get("verification_uri") or data["verification_url"]),
            verification_uri_complete=data.get("verification_uri_complete"),
            expires_in=int(data.get("expires_in") or 900),
            interval=max(int(data.get("interval") or 5), 1),
            device_code=str(data["device_code"]),
        )
    except (KeyError, TypeError, ValueError):
        raise OAuthError(
            f"{sign_in.label}: the device authorization answer from {url} lacks "
            "device_code, user_code or verification_uri"
        ) from None


def finish_device_login(
    sign_in: SignIn, code: DeviceCode, clock: Clock, *, sleep: Callable[[float], None] = time.sleep
) -> TokenRecord:
    """Poll the token endpoint until the person consents (or declines, or the code runs
    out), as RFC 8628 section 3.5 asks: every `interval` seconds, slower when told."""
    interval, waited = code.interval, 0
    while True:
        sleep(interval)
        waited += interval
        asked_at = clock.now()
        try:
            with token_endpoint(sign_in, "device sign-in"), token_session(sign_in) as session:
                token = session.fetch_token(
                    sign_in.endpoints.token_url,
                    grant_type=DEVICE_CODE_GRANT,
                    device_code=code.device_code,
                )
            return record_from_answer(sign_in, dict(token), asked_at)
        except OAuthError as exc:
            if exc.error == "authorization_pending" and waited < code.expires_in:
                continue
            if exc.error == "slow_down":
                interval += 5
                continue
            if exc.error == "access_denied":
                raise OAuthError(
                    f"{sign_in.label}: the sign-in was declined at {code.verification_uri}",
                    error=exc.error,
                ) from None
            if exc.error in ("expired_token", "authorization_pending"):
                raise OAuthError(
                    f"{sign_in.label}: the code {code.user_code} ran out before "
                    f"anyone signed in: run {sign_in.login_command} again",
                    error="expired_token",
                ) from None
            raise


@dataclass(frozen=True)
class BrowserSignIn:
    """An authorization-code sign-in (with PKCE) waiting for the address the browser
    was sent back to."""

    url: str
    state: str = field(repr=False)
    verifier: str = field(repr=False)


def start_browser_login(sign_in: SignIn) -> BrowserSignIn:
    url = sign_in.endpoints.authorization_url
    if url is None:
        raise OAuthError(f"{sign_in.label}: no authorization_url for the authorization-code flow")
    verifier = secrets.token_urlsafe(48)
    with token_session(
        sign_in,
        scope=" ".join(sign_in.scopes),
        redirect_uri=sign_in.redirect_uri,
        code_challenge_method="S256",
    ) as session:
        # Offline access and a fresh consent: Google hands out a refresh token only then.
        address, state = session.create_authorization_url(
            url,
            code_verifier=verifier,
            access_type="offline",
            prompt="consent",
            login_hint=sign_in.username or None,
        )
    return BrowserSignIn(address, state, verifier)


def finish_browser_login(
    sign_in: SignIn, pending: BrowserSignIn, answer: str, clock: Clock
) -> TokenRecord:
    """`answer`: the address the browser ended up at (or just its code)."""
    answer = answer.strip()
    if not answer:
        raise OAuthError(f"{sign_in.label}: no address was pasted")
    asked_at = clock.now()
    params: dict[str, Any] = (
        {"authorization_response": answer} if "code=" in answer else {"code": answer}
    )
    with (
        token_endpoint(sign_in, "authorization-code sign-in"),
        token_session(sign_in, redirect_uri=sign_in.redirect_uri, state=pending.state) as session,
    ):
        token = session.fetch_token(
            sign_in.endpoints.token_url, code_verifier=pending.verifier, **params
        )
    return record_from_answer(sign_in, dict(token), asked_at)


def store_sign_in(sign_in: SignIn, record: TokenRecord, store: TokenStore) -> Path:
    """Keep a new sign-in; a daemon that runs picks it up at its next connection."""
    if not record.refresh_token:
        raise OAuthError(
            f"{sign_in.label}: the provider gave no refresh token, so the "
            "sign-in would end with this access token (Microsoft: add the "
            "offline_access scope)"
        )
    return store.save(sign_in, replace(record, problem=None))
