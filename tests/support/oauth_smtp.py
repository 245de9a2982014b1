"""An SMTP sink that wants AUTH: SASL XOAUTH2 and OAUTHBEARER (RFC 7628) bearer tokens are
checked against an OAuthServer, PLAIN and LOGIN against a password, for comparison.
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

from mailbridge.demo.smtp_sink import SmtpSink, _TrackedSMTP
from tests.support.oauth_server import OAuthServer

__all__ = ["AuthAttempt", "OAuthSmtpSink", "parse_oauthbearer", "parse_xoauth2"]

REFUSED = "535 5.7.8 Authentication credentials invalid"


@dataclass(frozen=True)
class AuthAttempt:
    """One AUTH command as the sink saw it (never the token or password)."""

    mechanism: str
    user: str | None  # as the client named it; None if the blob did not parse
    accepted: bool


@dataclass(frozen=True)
class _Bearer:
    user: str | None
    token: str


def parse_xoauth2(blob: bytes) -> tuple[str, str] | None:
    """(user, token) from "user=U^Aauth=Bearer T^A^A"; None if it is not that."""
    fields = _kv_fields(blob.split(b"\x01"))
    auth = fields.get("auth", "")
    if "user" not in fields or not auth.startswith("Bearer "):
        return None
    return fields["user"], auth[7:]


def parse_oauthbearer(blob: bytes) -> tuple[str | None, str] | None:
    """(authzid or None, token) from RFC 7628's "n,a=U,^Aauth=Bearer T^A^A"."""
    gs2, _, rest = blob.partition(b"\x01")
    parts = gs2.decode(errors="replace").split(",")
    if len(parts) < 3 or parts[0] not in ("n", "y"):
        return None
    authzid = parts[1][2:].replace("=2C", ",").replace("=3D", "=") if parts[1] else None
    auth = _kv_fields(rest.split(b"\x01")).get("auth", "")
    if not auth.startswith("Bearer "):
        return None
    return authzid, auth[7:]


def _kv_fields(items: list[bytes]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in items:
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep:
            fields[key] = value
    return fields


# RFC 4954 section 4: an AUTH command line may be up to 12,288 octets. aiosmtpd stops at 512
# for a command and 1,001 for any line; a Microsoft token makes an AUTH line of about 3 KB.
AUTH_LINE_LIMIT = 12288


class _LongAuthSMTP(_TrackedSMTP):
    """aiosmtpd taking AUTH lines as long as RFC 4954 allows (DATA lines up to that too)."""

    line_length_limit = AUTH_LINE_LIMIT + 2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.command_size_limits = collections.defaultdict(
            lambda: SMTP.command_size_limit, AUTH=AUTH_LINE_LIMIT
        )


class OAuthSmtpSink(SmtpSink):
    """SmtpSink (same recording and failure switches) whose AUTH takes XOAUTH2 and
    OAUTHBEARER tokens that ``oauth`` vouches for, and PLAIN/LOGIN as any of the OAuth
    server's users with ``password``. With ``require_auth``, MAIL before AUTH gets 530.

    A refused token first gets a 334 challenge carrying the JSON error, as Gmail answers
    (the client sends an empty line, or ^A for OAUTHBEARER, then gets 535); with
    ``error_challenge=False`` it gets 535 at once, as Microsoft 365 answers. AUTH lines may
    be as long as RFC 4954 allows; with ``long_auth_lines=False``, aiosmtpd's 512 apply.
    """

    def __init__(
        self,
        oauth: OAuthServer,
        *,
        password: str = "secret",
        require_auth: bool = True,
        error_challenge: bool = True,
        long_auth_lines: bool = True,
        **sink_options: Any,
    ) -> None:
        # The credentials switch AUTH on in SmtpSink; _authenticate below decides.
        super().__init__(username=oauth.users[0], password=password, **sink_options)
        self.oauth, self.password = oauth, password
        self.require_auth, self.error_challenge = require_auth, error_challenge
        self.long_auth_lines = long_auth_lines
        self.auth_attempts: list[AuthAttempt] = []

    @property
    def _smtp_class(self) -> type[_TrackedSMTP]:
        return _LongAuthSMTP if self.long_auth_lines else _TrackedSMTP

    # -- SASL mechanisms beyond aiosmtpd's PLAIN and LOGIN (found by their auth_ names) --

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "XOAUTH2", parse_xoauth2)

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "OAUTHBEARER", parse_oauthbearer)

    async def _bearer(
        self,
        server: SMTP,
        args: list[str],
        mechanism: str,
        parse: Callable[[bytes], tuple[str | None, str] | None],
    ) -> AuthResult:
        blob = await _initial_response(server, args)
        if blob is None:
            return AuthResult(success=False, handled=True)
        parsed = parse(blob)
        if parsed is None:
            self._note(mechanism, None, accepted=False)
            return AuthResult(success=False, handled=False, message=f"501 5.5.2 bad {mechanism}")
        return await self._bearer_result(server, mechanism, _Bearer(*parsed))

    async def _bearer_result(self, server: SMTP, mechanism: str, bearer: _Bearer) -> AuthResult:
        assert server.session is not None and server.envelope is not None
        result = self._authenticate(server, server.session, server.envelope, mechanism, bearer)
        if result.success or not self.error_challenge:
            return result
        error = {
            "status": "401" if mechanism == "XOAUTH2" else "invalid_token",
            "schemes": "bearer",
            "scope": "mail",
        }
        if await server.challenge_auth(json.dumps(error)) is MISSING:
            return AuthResult(success=False, handled=True)  # the client aborted: 501 sent
        return AuthResult(success=False, handled=False, message=REFUSED)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, _Bearer):
            owner = self.oauth.user_for(auth_data.token)
            user = auth_data.user
            ok = owner is not None and (user is None or user.lower() == owner.lower())
            login = user or owner
        else:
            assert isinstance(auth_data, LoginPassword)
            login = auth_data.login.decode(errors="replace")
            ok = login in self.oauth.users and auth_data.password.decode() == self.password
        self._note(mechanism, login, accepted=ok)
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    def _note(self, mechanism: str, user: str | None, *, accepted: bool) -> None:
        with self._arrived:
            self.auth_attempts.append(AuthAttempt(mechanism, user, accepted))

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"


async def _initial_response(server: SMTP, args: list[str]) -> bytes | None:
    """The client's SASL initial response: on the AUTH line, or after an empty 334."""
    if len(args) > 1:
        return await _decoded(server, args[1])
    answer = await server.challenge_auth("", encode_to_b64=False)
    return None if answer is MISSING else bytes(answer)


async def _decoded(server: SMTP, text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        await server.push("501 5.5.2 Can't decode base64")
        return None
