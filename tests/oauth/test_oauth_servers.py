"""The OAuth test servers themselves, driven by plain clients (urllib, imapclient,
aiosmtplib): the authorization server's grants, Dovecot's oauth2 passdb, the SMTP sink."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import aiosmtplib
import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.support.dovecot import DovecotServer
from tests.support.oauth_server import DEVICE_CODE_GRANT, OAuthServer
from tests.support.oauth_smtp import OAuthSmtpSink, parse_oauthbearer, parse_xoauth2

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

USER = "support@example.test"
CLIENT = "mailbridge-test"
MESSAGE = b"From: support@example.test\r\nTo: customer@example.org\r\nSubject: hi\r\n\r\nhello\r\n"


class ManualClock:
    """Seconds since the epoch, moved only by the test."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def call(
    url: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST the form (GET without one); the status and the JSON answer, errors included."""
    data = urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def start_device_flow(server: OAuthServer, scope: str = "imap smtp") -> dict[str, Any]:
    status, answer = call(server.device_authorization_url, {"client_id": CLIENT, "scope": scope})
    assert status == 200
    return answer


def poll(server: OAuthServer, device_code: str) -> tuple[int, dict[str, Any]]:
    return call(
        server.token_url,
        {"grant_type": DEVICE_CODE_GRANT, "client_id": CLIENT, "device_code": device_code},
    )


def refresh(server: OAuthServer, refresh_token: str) -> tuple[int, dict[str, Any]]:
    return call(
        server.token_url,
        {"grant_type": "refresh_token", "client_id": CLIENT, "refresh_token": refresh_token},
    )


def sign_in(server: OAuthServer, user: str = USER) -> dict[str, Any]:
    """The whole device flow; the token answer."""
    device = start_device_flow(server)
    server.approve(device["user_code"], user)
    status, tokens = poll(server, device["device_code"])
    assert status == 200, tokens
    return tokens


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def oauth(clock: ManualClock) -> Iterator[OAuthServer]:
    with OAuthServer(clock=clock, interval=5, users=(USER, "sales@example.test")) as server:
        yield server


# --- device authorization (RFC 8628) -----------------------------------------------------


def test_device_flow_waits_for_consent_then_issues_tokens(oauth: OAuthServer) -> None:
    device = start_device_flow(oauth)
    assert device["expires_in"] == 600 and device["interval"] == 5
    assert device["verification_uri"] == oauth.url + "/device"
    assert device["user_code"] in device["verification_uri_complete"]
    with urllib.request.urlopen(device["verification_uri"], timeout=5) as page:
        assert page.status == 200
    assert oauth.pending_user_codes() == [device["user_code"]]

    status, answer = poll(oauth, device["device_code"])
    assert (status, answer["error"]) == (400, "authorization_pending")
    oauth.approve(device["user_code"])
    status, tokens = poll(oauth, device["device_code"])

    assert status == 200
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    assert tokens["scope"] == "imap smtp" and tokens["refresh_token"]
    assert oauth.user_for(tokens["access_token"]) == USER
    assert oauth.pending_user_codes() == []
    assert oauth.grants == [DEVICE_CODE_GRANT, DEVICE_CODE_GRANT]
    assert poll(oauth, device["device_code"])[1]["error"] == "invalid_grant"  # used once


def test_polling_faster_than_the_interval_gets_slow_down(
    oauth: OAuthServer, clock: ManualClock
) -> None:
    device = start_device_flow(oauth)
    assert poll(oauth, device["device_code"])[1]["error"] == "authorization_pending"
    clock.advance(4)
    assert poll(oauth, device["device_code"])[1]["error"] == "slow_down"
    clock.advance(5)
    assert poll(oauth, device["device_code"])[1]["error"] == "authorization_pending"


def test_a_declined_request_is_access_denied(oauth: OAuthServer) -> None:
    device = start_device_flow(oauth)
    oauth.deny(device["user_code"])
    assert poll(oauth, device["device_code"])[1]["error"] == "access_denied"
    with pytest.raises(KeyError):
        oauth.approve(device["user_code"])


def test_an_unanswered_request_expires(oauth: OAuthServer, clock: ManualClock) -> None:
    device = start_device_flow(oauth)
    clock.advance(600)
    assert oauth.pending_user_codes() == []
    assert poll(oauth, device["device_code"])[1]["error"] == "expired_token"


def test_only_known_users_can_consent(oauth: OAuthServer) -> None:
    device = start_device_flow(oauth)
    with pytest.raises(ValueError, match="stranger@example.test"):
        oauth.approve(device["user_code"], "stranger@example.test")


# --- refresh, expiry, revocation -----------------------------------------------------------


def test_refresh_rotates_the_refresh_token(oauth: OAuthServer) -> None:
    first = sign_in(oauth)
    status, second = refresh(oauth, first["refresh_token"])

    assert status == 200
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert oauth.user_for(second["access_token"]) == USER
    assert refresh(oauth, first["refresh_token"])[1]["error"] == "invalid_grant"
    assert refresh(oauth, second["refresh_token"])[0] == 200
    assert oauth.grants[-3:] == ["refresh_token"] * 3


def test_without_rotation_the_refresh_token_stays(clock: ManualClock) -> None:
    with OAuthServer(clock=clock, rotate_refresh_tokens=False) as server:
        tokens = sign_in(server)
        for _ in range(2):
            status, answer = refresh(server, tokens["refresh_token"])
            assert status == 200 and "refresh_token" not in answer


def test_access_tokens_expire_on_the_clock(oauth: OAuthServer, clock: ManualClock) -> None:
    tokens = sign_in(oauth)
    clock.advance(3599)
    assert oauth.user_for(tokens["access_token"]) == USER
    clock.advance(1)
    assert oauth.user_for(tokens["access_token"]) is None
    assert refresh(oauth, tokens["refresh_token"])[0] == 200  # refresh tokens do not


def test_expire_access_tokens_spares_later_ones(oauth: OAuthServer) -> None:
    before = sign_in(oauth)
    oauth.expire_access_tokens()
    _, after = refresh(oauth, before["refresh_token"])
    assert oauth.user_for(before["access_token"]) is None
    assert oauth.user_for(after["access_token"]) == USER


def test_revoking_one_users_refresh_tokens(oauth: OAuthServer) -> None:
    support, sales = sign_in(oauth), sign_in(oauth, "sales@example.test")
    oauth.revoke_refresh_tokens(USER)

    status, answer = refresh(oauth, support["refresh_token"])
    assert (status, answer["error"]) == (400, "invalid_grant")
    assert oauth.user_for(support["access_token"]) == USER  # lives until it expires
    assert refresh(oauth, sales["refresh_token"])[0] == 200


def test_revocation_endpoint_ends_the_consent(oauth: OAuthServer) -> None:
    tokens = sign_in(oauth)
    form = {"client_id": CLIENT, "token": tokens["refresh_token"]}
    assert call(oauth.revocation_url, form) == (200, {})
    assert refresh(oauth, tokens["refresh_token"])[1]["error"] == "invalid_grant"
    assert oauth.user_for(tokens["access_token"]) is None
    assert call(oauth.revocation_url, {"client_id": CLIENT, "token": "unknown"}) == (200, {})


# --- clients and their secrets ---------------------------------------------------------------


def test_a_public_client_must_not_send_a_secret(oauth: OAuthServer) -> None:
    tokens = sign_in(oauth)
    status, answer = call(
        oauth.token_url,
        {
            "grant_type": "refresh_token",
            "client_id": CLIENT,
            "client_secret": "x",
            "refresh_token": tokens["refresh_token"],
        },
    )
    assert (status, answer["error"]) == (400, "invalid_client")
    unknown = call(oauth.device_authorization_url, {"client_id": "someone-else"})
    assert unknown[1]["error"] == "invalid_client"
    assert oauth.requests[-1]["client_secret"] == "x"  # recorded for leak checks


def test_client_credentials_need_the_secret() -> None:
    with OAuthServer(client_secret="s3cret") as server:
        form = {"grant_type": "client_credentials", "client_id": CLIENT, "scope": "imap"}
        status, answer = call(server.token_url, form)
        assert (status, answer["error"]) == (400, "invalid_client")

        basic = base64.b64encode(f"{CLIENT}:s3cret".encode()).decode()
        status, answer = call(
            server.token_url,
            {"grant_type": "client_credentials"},
            {"Authorization": f"Basic {basic}"},
        )
        assert status == 200 and "refresh_token" not in answer
        assert server.user_for(answer["access_token"]) == USER

        wrong = base64.b64encode(f"{CLIENT}:guess".encode()).decode()
        status, answer = call(
            server.token_url,
            {"grant_type": "client_credentials"},
            {"Authorization": f"Basic {wrong}"},
        )
        assert (status, answer["error"]) == (401, "invalid_client")


def test_client_credentials_refused_to_a_public_client(oauth: OAuthServer) -> None:
    status, answer = call(
        oauth.token_url, {"grant_type": "client_credentials", "client_id": CLIENT}
    )
    assert (status, answer["error"]) == (400, "unauthorized_client")


# --- introspection (RFC 7662), as Dovecot asks ------------------------------------------------


def test_introspection_in_every_mode(oauth: OAuthServer) -> None:
    token = sign_in(oauth)["access_token"]
    posted = call(oauth.introspection_url, {"token": token})[1]
    got = call(f"{oauth.introspection_url}?token={token}")[1]
    bearer = call(oauth.introspection_url, headers={"Authorization": f"Bearer {token}"})[1]

    assert posted == got == bearer
    assert posted["active"] is True and posted["username"] == USER
    assert oauth.introspections == ["post", "get", "auth"]
    oauth.expire_access_tokens()
    assert call(oauth.introspection_url, {"token": token}) == (200, {"active": False})


# --- Dovecot with the oauth2 passdb ---------------------------------------------------------


@pytest.fixture
def dovecot(oauth: OAuthServer) -> Iterator[DovecotServer]:
    with DovecotServer(oauth=oauth) as server:
        yield server


def imap(server: DovecotServer) -> IMAPClient:
    return IMAPClient(server.host, port=server.port, ssl=False, timeout=10)


@pytest.mark.parametrize("mode", ["post", "get", "auth"])
def test_dovecot_takes_a_fresh_token_over_xoauth2(oauth: OAuthServer, mode: str) -> None:
    with DovecotServer(oauth=oauth, introspection_mode=mode) as dovecot:
        token = sign_in(oauth)["access_token"]
        with imap(dovecot) as client:
            assert b"AUTH=XOAUTH2" in client.capabilities()
            client.oauth2_login(USER, token)
            assert client.select_folder("INBOX")[b"EXISTS"] == 0
        assert oauth.introspections == [mode]
        assert token not in dovecot.log()


def test_dovecot_takes_oauthbearer(oauth: OAuthServer, dovecot: DovecotServer) -> None:
    dovecot.append(MESSAGE)  # as the same user, by password
    with imap(dovecot) as client:
        client.oauthbearer_login(USER, sign_in(oauth)["access_token"])
        assert client.select_folder("INBOX")[b"EXISTS"] == 1


def test_dovecot_refuses_an_expired_token_at_once(
    oauth: OAuthServer, dovecot: DovecotServer, clock: ManualClock
) -> None:
    tokens = sign_in(oauth)
    with imap(dovecot) as client:
        client.oauth2_login(USER, tokens["access_token"])
    clock.advance(3600)
    with imap(dovecot) as client, pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
        client.oauth2_login(USER, tokens["access_token"])
    assert "Provided token is not valid" in dovecot.log()
    assert tokens["access_token"] not in dovecot.log()
    _, fresh = refresh(oauth, tokens["refresh_token"])
    started = time.monotonic()
    with imap(dovecot) as client:
        client.oauth2_login(USER, fresh["access_token"])
    # Dovecot's per-IP penalty would hold this login back 2 s or more after a failure.
    assert time.monotonic() - started < 2.0


def test_dovecot_refuses_tokens_after_expire_access_tokens(
    oauth: OAuthServer, dovecot: DovecotServer
) -> None:
    token = sign_in(oauth)["access_token"]
    oauth.expire_access_tokens()
    for login in (IMAPClient.oauth2_login, IMAPClient.oauthbearer_login):
        with imap(dovecot) as client, pytest.raises(LoginError):
            login(client, USER, token)


def test_dovecot_refuses_another_users_token(oauth: OAuthServer, dovecot: DovecotServer) -> None:
    token = sign_in(oauth, "sales@example.test")["access_token"]
    with imap(dovecot) as client, pytest.raises(LoginError):
        client.oauth2_login(USER, token)
    assert "did not match" in dovecot.log()


def test_dovecot_without_its_oauth_server_fails_temporarily(
    oauth: OAuthServer, dovecot: DovecotServer
) -> None:
    token = sign_in(oauth)["access_token"]
    oauth.close()
    with imap(dovecot) as client, pytest.raises(LoginError, match="UNAVAILABLE"):
        client.oauth2_login(USER, token)


# --- the SMTP sink, with aiosmtplib ----------------------------------------------------------


@pytest.fixture
def sink(oauth: OAuthServer) -> Iterator[OAuthSmtpSink]:
    with OAuthSmtpSink(oauth) as server:
        yield server


def smtp(sink: OAuthSmtpSink, **options: Any) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=sink.host, port=sink.port, start_tls=False, timeout=5, **options
    )


async def send_with_xoauth2(sink: OAuthSmtpSink, token: str) -> None:
    async with smtp(sink) as client:
        await client.auth_xoauth2(USER, token)
        await client.sendmail(USER, ["customer@example.org"], MESSAGE)


def test_smtp_xoauth2_with_a_valid_token(oauth: OAuthServer, sink: OAuthSmtpSink) -> None:
    token = sign_in(oauth)["access_token"]
    asyncio.run(send_with_xoauth2(sink, token))
    assert sink.wait_for(1)[0].raw.endswith(b"hello\r\n")
    assert [(a.mechanism, a.user, a.accepted) for a in sink.auth_attempts] == [
        ("XOAUTH2", USER, True)
    ]


@pytest.mark.parametrize("error_challenge", [True, False], ids=["gmail", "microsoft"])
def test_smtp_xoauth2_with_an_expired_token_is_535(
    oauth: OAuthServer, clock: ManualClock, error_challenge: bool
) -> None:
    token = sign_in(oauth)["access_token"]
    clock.advance(3600)
    with OAuthSmtpSink(oauth, error_challenge=error_challenge) as sink:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as refused:
            asyncio.run(send_with_xoauth2(sink, token))
        assert refused.value.code == 535
        assert sink.received == [] and not sink.auth_attempts[0].accepted


def test_smtp_oauth_token_generator_logs_in_on_connect(
    oauth: OAuthServer, sink: OAuthSmtpSink
) -> None:
    token: str = sign_in(oauth)["access_token"]

    async def current_token() -> str:
        return token

    async def send() -> None:
        async with smtp(sink, username=USER, oauth_token_generator=current_token) as client:
            await client.sendmail(USER, ["customer@example.org"], MESSAGE)

    asyncio.run(send())
    assert len(sink.wait_for(1)) == 1


def test_smtp_oauthbearer_and_its_error_challenge(oauth: OAuthServer, sink: OAuthSmtpSink) -> None:
    token = sign_in(oauth)["access_token"]

    async def auth(token: str) -> list[int]:
        blob = f"n,a={USER},\x01auth=Bearer {token}\x01\x01".encode()
        async with smtp(sink) as client:
            await client.ehlo()
            codes = [
                (await client.execute_command(b"AUTH", b"OAUTHBEARER", base64.b64encode(blob))).code
            ]
            if codes[0] == 334:
                codes.append((await client.execute_command(b"AQ==")).code)  # ^A: go on
            return codes

    assert asyncio.run(auth(token)) == [235]
    assert asyncio.run(auth("at-forged")) == [334, 535]


def test_smtp_mail_before_auth_is_refused(sink: OAuthSmtpSink) -> None:
    async def send() -> None:
        async with smtp(sink) as client:
            await client.sendmail(USER, ["customer@example.org"], MESSAGE)

    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        asyncio.run(send())
    assert refused.value.code == 530


def test_smtp_plain_login_with_the_password(sink: OAuthSmtpSink) -> None:
    async def send(password: str) -> None:
        async with smtp(sink, username=USER, password=password) as client:
            await client.sendmail(USER, ["customer@example.org"], MESSAGE)

    asyncio.run(send("secret"))
    with pytest.raises(aiosmtplib.SMTPAuthenticationError):
        asyncio.run(send("wrong"))


def test_sasl_blobs_parse() -> None:
    assert parse_xoauth2(b"user=a@b\x01auth=Bearer t0k\x01\x01") == ("a@b", "t0k")
    assert parse_xoauth2(b"user=a@b\x01\x01") is None
    assert parse_oauthbearer(b"n,a=a=2Cb@c,\x01host=x\x01auth=Bearer t\x01\x01") == ("a,b@c", "t")
    assert parse_oauthbearer(b"n,,\x01auth=Bearer t\x01\x01") == (None, "t")
    assert parse_oauthbearer(b"garbage") is None
