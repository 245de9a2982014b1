"""A local OAuth2 authorization server for the tests, over real HTTP on 127.0.0.1: device
authorization (RFC 8628), the device-code, refresh and client-credentials grants, token
introspection (RFC 7662, what Dovecot's oauth2 passdb asks) and revocation (RFC 7009).

Time comes from an injected clock, so a test expires a token by moving the clock, not by
sleeping. No TLS: it only ever listens on loopback.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import parse_qsl, urlsplit

__all__ = ["DEVICE_CODE_GRANT", "OAuthServer"]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_CODE_LIFETIME = 600
# No vowels or look-alikes, as RFC 8628 section 6.1 suggests for codes people type.
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"

Json = dict[str, Any]


class OAuthError(Exception):
    """An RFC 6749 section 5.2 error answer: {"error": ..., "error_description": ...}."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.status = error, description, status


@dataclass
class _DeviceGrant:
    user_code: str
    scope: str
    expires_at: float
    last_poll: float | None = None
    user: str | None = None  # set by approve()
    denied: bool = False
    redeemed: bool = False


@dataclass
class _Token:
    user: str
    scope: str
    family: str  # one consent: every refresh and access token it led to
    expires_at: float = float("inf")
    revoked: bool = False


class OAuthServer:
    """The authorization server. ``with OAuthServer() as server:`` serves on a free port.

    One registered client, ``client_id``. Without ``client_secret`` it is a public client
    (like a Microsoft device-flow app): a secret sent anyway is refused. With one, every
    token request must carry it (form or HTTP Basic), and client_credentials is allowed;
    those tokens act for ``app_user`` (default: the first of ``users``).
    """

    def __init__(
        self,
        *,
        client_id: str = "mailbridge-test",
        client_secret: str | None = None,
        access_lifetime: int = 3600,
        clock: Callable[[], float] = time.time,
        users: Iterable[str] = ("support@example.test",),
        interval: int = 1,
        rotate_refresh_tokens: bool = True,
        app_user: str | None = None,
        token_bytes: int = 24,
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        # Random bytes per access token; Microsoft's are JWTs of 1.5 to 2.5 KB.
        self.token_bytes = token_bytes
        self.access_lifetime, self.interval = access_lifetime, interval
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.users = tuple(users)
        if not self.users:
            raise ValueError("OAuthServer needs at least one user")
        self.app_user = app_user if app_user is not None else self.users[0]
        self._clock = clock
        self.grants: list[str] = []  # grant_type of every /token request, in order
        self.requests: list[dict[str, str]] = []  # every form posted to /token
        self.introspections: list[str] = []  # "post", "get" or "auth", one per call
        # Called with each /token form as it arrives, before it is answered (in the request's
        # thread): a test does something "meanwhile", such as another process refreshing.
        self.before_token: Callable[[dict[str, str]], None] | None = None
        self._lock = threading.Lock()
        self._devices: dict[str, _DeviceGrant] = {}  # by device_code
        self._access: dict[str, _Token] = {}
        self._refresh: dict[str, _Token] = {}
        self._families = itertools.count(1)
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> Self:
        if self._http is None:
            self._http = _HttpServer(("127.0.0.1", 0), _Handler, self)
            self._thread = threading.Thread(
                target=self._http.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="oauth-server",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            http.shutdown()
            http.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        if self._http is None:
            raise RuntimeError("the OAuth server is not running; use it as a context manager")
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    @property
    def device_authorization_url(self) -> str:
        return self.url + "/devicecode"

    @property
    def introspection_url(self) -> str:
        return self.url + "/introspect"

    @property
    def revocation_url(self) -> str:
        return self.url + "/revoke"

    # -- what the person at the browser, or the test, does --

    def approve(self, user_code: str, user: str | None = None) -> None:
        """Consent to a pending device code as ``user`` (default: the first of users)."""
        user = self.users[0] if user is None else user
        if user not in self.users:
            raise ValueError(f"{user!r} is not one of this server's users {self.users}")
        with self._lock:
            self._pending(user_code).user = user

    def deny(self, user_code: str) -> None:
        with self._lock:
            self._pending(user_code).denied = True

    def pending_user_codes(self) -> list[str]:
        """User codes waiting for consent, oldest first."""
        now = self._clock()
        with self._lock:
            return [
                g.user_code
                for g in self._devices.values()
                if g.user is None and not g.denied and now < g.expires_at
            ]

    def revoke_refresh_tokens(self, user: str | None = None) -> None:
        """Revoke every refresh token, or one user's; their access tokens live on."""
        with self._lock:
            for token in self._refresh.values():
                if user is None or token.user == user:
                    token.revoked = True

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is rejected from now on."""
        with self._lock:
            for token in self._access.values():
                token.expires_at = float("-inf")

    def user_for(self, access_token: str) -> str | None:
        """The user an access token acts for; None if unknown, expired or revoked."""
        now = self._clock()
        with self._lock:
            record = self._live_access_token(access_token, now)
            return record.user if record is not None else None

    def _pending(self, user_code: str) -> _DeviceGrant:
        wanted = user_code.strip().upper()
        for grant in self._devices.values():
            if grant.user_code == wanted and grant.user is None and not grant.denied:
                return grant
        raise KeyError(f"no device code waits for consent with user code {user_code!r}")

    # -- endpoints: called from the HTTP threads with the parsed form --

    def device_authorization(self, form: dict[str, str], authorization: str | None) -> Json:
        self._authenticate_client(form, authorization, secret_required=False)
        device_code = "dc-" + secrets.token_urlsafe(24)
        user_code = "-".join(
            "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(4)) for _ in range(2)
        )
        with self._lock:
            self._devices[device_code] = _DeviceGrant(
                user_code, form.get("scope", ""), self._clock() + DEVICE_CODE_LIFETIME
            )
        return {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": self.url + "/device",
            "verification_uri_complete": f"{self.url}/device?user_code={user_code}",
            "expires_in": DEVICE_CODE_LIFETIME,
            "interval": self.interval,
            "message": f"To sign in, open {self.url}/device and enter the code {user_code}.",
        }

    def token(self, form: dict[str, str], authorization: str | None) -> Json:
        if self.before_token is not None:
            self.before_token(form)
        grant_type = form.get("grant_type", "")
        with self._lock:
            self.grants.append(grant_type)
            self.requests.append(dict(form))
        self._authenticate_client(form, authorization, secret_required=True)
        with self._lock:
            if grant_type == DEVICE_CODE_GRANT:
                return self._redeem_device_code(_required(form, "device_code"))
            if grant_type == "refresh_token":
                return self._refresh_grant(_required(form, "refresh_token"), form.get("scope"))
            if grant_type == "client_credentials":
                if self.client_secret is None:
                    raise OAuthError(
                        "unauthorized_client", "client_credentials needs a confidential client"
                    )
                return self._issue(self.app_user, form.get("scope", ""), refresh=False)
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    def introspect(self, token: str, mode: str) -> Json:
        now = self._clock()
        with self._lock:
            self.introspections.append(mode)
            record = self._live_access_token(token, now)
            if record is None:
                return {"active": False}
            return {
                "active": True,
                "username": record.user,
                "sub": record.user,
                "email": record.user,
                "scope": record.scope,
                "client_id": self.client_id,
                "token_type": "Bearer",
                "exp": int(record.expires_at),
            }

    def revoke(self, form: dict[str, str], authorization: str | None) -> Json:
        self._authenticate_client(form, authorization, secret_required=True)
        token = _required(form, "token")
        with self._lock:
            found = self._refresh.get(token) or self._access.get(token)
            if found is not None and token in self._refresh:
                # RFC 7009 2.1: revoking a refresh token ends the whole consent.
                for record in itertools.chain(self._refresh.values(), self._access.values()):
                    if record.family == found.family:
                        record.revoked = True
            elif found is not None:
                found.revoked = True
        return {}  # unknown tokens too: RFC 7009 2.2

    # -- grants (called with the lock held) --

    def _live_access_token(self, token: str, now: float) -> _Token | None:
        record = self._access.get(token)
        if record is None or record.revoked or now >= record.expires_at:
            return None
        return record

    def _redeem_device_code(self, device_code: str) -> Json:
        grant = self._devices.get(device_code)
        if grant is None or grant.redeemed:
            raise OAuthError("invalid_grant", "unknown or already used device_code")
        now = self._clock()
        if now >= grant.expires_at:
            raise OAuthError("expired_token", "the device code expired; start again")
        if grant.denied:
            raise OAuthError("access_denied", "the user declined the request")
        if grant.user is None:
            too_soon = grant.last_poll is not None and now - grant.last_poll < self.interval
            grant.last_poll = now
            if too_soon:
                raise OAuthError("slow_down", f"poll at most every {self.interval} s")
            raise OAuthError("authorization_pending", "the user has not yet consented")
        grant.redeemed = True
        return self._issue(grant.user, grant.scope, refresh=True)

    def _refresh_grant(self, refresh_token: str, scope: str | None) -> Json:
        record = self._refresh.get(refresh_token)
        if record is None or record.revoked:
            raise OAuthError("invalid_grant", "the refresh token is unknown, used or revoked")
        if scope is not None and not set(scope.split()) <= set(record.scope.split()):
            raise OAuthError("invalid_scope", "scope exceeds what the user consented to")
        if not self.rotate_refresh_tokens:
            # Like Google: same refresh token kept, none in the answer.
            return self._issue(
                record.user, scope or record.scope, refresh=False, family=record.family
            )
        record.revoked = True  # rotated: a second use of the old one is refused
        return self._issue(record.user, scope or record.scope, refresh=True, family=record.family)

    def _issue(self, user: str, scope: str, *, refresh: bool, family: str | None = None) -> Json:
        family = family or f"consent-{next(self._families)}"
        access_token = "at-" + secrets.token_urlsafe(self.token_bytes)
        self._access[access_token] = _Token(
            user, scope, family, self._clock() + self.access_lifetime
        )
        answer: Json = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.access_lifetime,
            "scope": scope,
        }
        if refresh:
            refresh_token = "rt-" + secrets.token_urlsafe(24)
            self._refresh[refresh_token] = _Token(user, scope, family)
            answer["refresh_token"] = refresh_token
        return answer

    def _authenticate_client(
        self, form: dict[str, str], authorization: str | None, *, secret_required: bool
    ) -> None:
        basic = _basic_credentials(authorization)
        if basic is not None and "client_secret" in form:
            raise OAuthError("invalid_request", "more than one client authentication method")
        client_id = basic[0] if basic is not None else form.get("client_id")
        secret = basic[1] if basic is not None else form.get("client_secret")
        status = 401 if basic is not None else 400
        if client_id != self.client_id:
            raise OAuthError("invalid_client", f"unknown client_id {client_id!r}", status)
        if self.client_secret is None:
            if secret:
                raise OAuthError(
                    "invalid_client", "public client: no client_secret expected", status
                )
        elif (secret is not None or secret_required) and not hmac.compare_digest(
            (secret or "").encode(), self.client_secret.encode()
        ):
            raise OAuthError("invalid_client", "client authentication failed", status)


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise OAuthError("invalid_request", f"missing parameter {name}")
    return value


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if authorization is None or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as error:
        raise OAuthError("invalid_client", "malformed Basic credentials", 401) from error
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


def _bearer(authorization: str | None) -> str | None:
    if authorization is None or not authorization.lower().startswith("bearer "):
        return None
    return authorization[7:].strip()


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], oauth: OAuthServer
    ) -> None:
        super().__init__(address, handler)
        self.oauth = oauth


class _Handler(BaseHTTPRequestHandler):
    server_version = "mailbridge-test-oauth"

    def do_POST(self) -> None:
        oauth = cast(_HttpServer, self.server).oauth
        authorization = self.headers.get("Authorization")
        path = urlsplit(self.path).path
        try:
            form = self._form()
            if path == "/devicecode":
                self._answer(200, oauth.device_authorization(form, authorization))
            elif path == "/token":
                self._answer(200, oauth.token(form, authorization))
            elif path == "/introspect":
                # Dovecot's introspection_mode = post sends token=...
                token = form.get("token") or _bearer(authorization) or ""
                self._answer(200, oauth.introspect(token, "post"))
            elif path == "/revoke":
                self._answer(200, oauth.revoke(form, authorization))
            else:
                self._answer(404, {"error": "not_found", "error_description": path})
        except OAuthError as error:
            headers = {"WWW-Authenticate": 'Basic realm="oauth"'} if error.status == 401 else {}
            self._answer(
                error.status,
                {"error": error.error, "error_description": error.description},
                headers,
            )

    def do_GET(self) -> None:
        # Dovecot's introspection_mode = get appends the token to the URL (so end
        # introspection_url with "?token="); = auth sends it as a Bearer header.
        oauth = cast(_HttpServer, self.server).oauth
        parts = urlsplit(self.path)
        if parts.path == "/device":  # the verification_uri a person would open
            self._page("Enter the code the application shows you.\n")
            return
        if parts.path != "/introspect":
            self._answer(404, {"error": "not_found", "error_description": parts.path})
            return
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        bearer = _bearer(self.headers.get("Authorization"))
        token = bearer or query.get("token") or query.get("access_token") or ""
        self._answer(200, oauth.introspect(token, "auth" if bearer else "get"))

    def _form(self) -> dict[str, str]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as error:
            raise OAuthError("invalid_request", "bad Content-Length") from error
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        pairs = parse_qsl(body, keep_blank_values=True)
        form = dict(pairs)
        if len(form) != len(pairs):
            raise OAuthError("invalid_request", "a parameter was sent more than once")
        return form

    def _answer(self, status: int, body: Json, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _page(self, text: str) -> None:
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: request lines can carry tokens (GET ?token=...), and tests grep for leaks.
        pass
