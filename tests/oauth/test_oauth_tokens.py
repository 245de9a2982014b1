"""The token provider against a real OAuth2 server over HTTP (tests/support/oauth_server.py), with
the clock moved by the test: refresh before expiry, rotation written back, a refused
refresh token remembered, a new sign-in picked up, and errors that say where and why."""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbridge.clock import FrozenClock
from mailbridge.core.oauth import TokenRecord
from mailbridge.errors import PermanentError, TransientError
from mailbridge.oauth.accounts import SignIn
from mailbridge.oauth.endpoint import OAuthError, SignInRequired, client_credentials_token, refresh
from mailbridge.oauth.signin import finish_device_login, start_device_login
from mailbridge.oauth.tokens import TokenProvider, TokenStore
from tests.conftest import SelfSignedCertificate
from tests.support.oauth import USER, generic, signed_in
from tests.support.oauth_server import DEVICE_CODE_GRANT, OAuthServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

START = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def server(clock: FrozenClock) -> Iterator[OAuthServer]:
    with OAuthServer(clock=lambda: clock.now().timestamp()) as running:
        yield running


def test_a_token_is_reused_until_its_last_five_minutes_then_refreshed(
    server: OAuthServer, clock: FrozenClock, tmp_path: Path
) -> None:
    store = TokenStore(tmp_path)
    provider = signed_in(server, generic(server), store, clock)
    first = provider.access_token()
    clock.advance(timedelta(minutes=54))
    assert provider.access_token() == first
    assert server.grants == [DEVICE_CODE_GRANT]
    assert provider.seconds_left() == 6 * 60

    clock.advance(timedelta(minutes=1, seconds=1))  # 4:59 left: refreshed before it is used
    second = provider.access_token()
    assert second != first and server.user_for(second) == USER
    assert server.grants == [DEVICE_CODE_GRANT, "refresh_token"]
    assert provider.seconds_left() == 3600


def test_the_rotated_refresh_token_is_written_back_owner_only(
    server: OAuthServer, clock: FrozenClock, tmp_path: Path
) -> None:
    store, sign_in = TokenStore(tmp_path), generic(server)
    provider = signed_in(server, sign_in, store, clock)
    before = json.loads(store.path(sign_in).read_text())["refresh_token"]
    provider.invalidate()
    provider.access_token()
    after = json.loads(store.path(sign_in).read_text())
    assert after["refresh_token"] != before  # the server rotates: the old one is spent
    assert server.user_for(after["access_token"]) == USER
    assert stat.S_IMODE(store.path(sign_in).stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    # Beside it, the lock file processes sharing it refresh under.
    assert sorted(p.name for p in store.directory.iterdir()) == [
        ".mailbox-support.json.lock",
        "mailbox-support.json",
    ]
    assert stat.S_IMODE((store.directory / ".mailbox-support.json.lock").stat().st_mode) == 0o600
    # A second provider (a restart) carries on from the file with the rotated token.
    clock.advance(timedelta(hours=2))
    TokenProvider(sign_in, store, clock).access_token()
    assert server.grants.count("refresh_token") == 2


def test_two_sessions_refused_with_the_same_token_refresh_it_once(
    server: OAuthServer, clock: FrozenClock, tmp_path: Path
) -> None:
    # The inbox poller and the Sent-folder poller (or the SMTP sender) share the sign-in.
    provider = signed_in(server, generic(server), TokenStore(tmp_path), clock)
    token = provider.access_token()
    provider.invalidate(token)
    first = provider.access_token()
    provider.invalidate(token)  # the second session, refused with the same old token
    assert provider.access_token() == first != token
    assert server.grants.count("refresh_token") == 1


def test_two_processes_refreshing_at_once_take_turns_and_both_stay_signed_in(
    server: OAuthServer, clock: FrozenClock, tmp_path: Path
) -> None:
    store, sign_in = TokenStore(tmp_path), generic(server)
    daemon = signed_in(server, sign_in, store, clock)
    other = TokenProvider(sign_in, store, clock)  # `mailbridge oauth test`, or an instance
    daemon.access_token(), other.access_token()
    clock.advance(timedelta(minutes=56))
    got: list[str] = []
    racer = threading.Thread(target=lambda: got.append(other.access_token()))

    def meanwhile(form: dict[str, str]) -> None:
        if not racer.is_alive() and not got:  # the daemon's request is in flight
            racer.start()
            racer.join(0.5)  # the other waits for the lock (or, without one, refreshes)

    server.before_token = meanwhile
    token = daemon.access_token()
    racer.join(10)
    assert got == [token] and server.user_for(token) == USER
    assert server.grants.count("refresh_token") == 1  # the refresh token was spent once
    assert json.loads(store.path(sign_in).read_text())["problem"] is None
    assert daemon.problem is None and other.problem is None


def test_a_refresh_token_another_writer_spent_meanwhile_is_followed_not_marked_revoked(
    server: OAuthServer, clock: FrozenClock, tmp_path: Path
) -> None:
    store, sign_in = TokenStore(tmp_path), generic(server)
    provider = signed_in(server, sign_in, store, clock)
    provider.access_token()
    clock.advance(timedelta(minutes=56))
    spent: list[str] = []

    def meanwhile(form: dict[str, str]) -> None:
        # Something that does not take the lock (a copy of the file, an older version)
        # refreshes with the same refresh token first and writes the rotated one.
        if not spent:
            spent.append(form["refresh_token"])
            record = store.load(sign_in)
            assert record is not None
            store.save(sign_in, refresh(sign_in, record, clock))

    server.before_token = meanwhile
    token = provider.access_token()  # its own refresh got invalid_grant
    saved = json.loads(store.path(sign_in).read_text())
    assert saved["problem"] is None and saved["access_token"] == token
    assert server.user_for(token) == USER and provider.problem is None


def test_a_token_file_that_cannot_be_written_keeps_the_new_token_in_memory(
    server: OAuthServer, clock: FrozenClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, sign_in = TokenStore(tmp_path), generic(server)
    provider = signed_in(server, sign_in, store, clock)
    before = json.loads(store.path(sign_in).read_text())
    provider.invalidate()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, hard))  # writing more fails: EFBIG
    try:
        token = provider.access_token()  # the rotation spent the refresh token on file
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert server.user_for(token) == USER
    assert json.loads(store.path(sign_in).read_text()) == before
    assert "could not write the token file" in caplog.text
    assert "the token is kept in memory and written at its next use" in caplog.text

    assert provider.access_token() == token  # the next use writes it
    saved = json.loads(store.path(sign_in).read_text())
    assert saved["access_token"] == token
    assert saved["refresh_token"] != before["refresh_token"]
    clock.advance(timedelta(hours=2))  # a restart carries on with the rotated refresh token
    assert server.user_for(TokenProvider(sign_in, store, clock).access_token()) == USER


def test_an_unreachable_token_endpoint_leaves_a_token_in_its_last_minutes_in_use(
    clock: FrozenClock, tmp_path: Path
) -> None:
    with OAuthServer(clock=lambda: clock.now().timestamp()) as gone:
        provider = signed_in(gone, generic(gone), TokenStore(tmp_path), clock)
        token = provider.access_token()
    clock.advance(timedelta(minutes=56))  # due for a refresh, four minutes left
    assert provider.access_token() == token
    provider.invalidate(token)  # a server refused it: no use offering it again
    with pytest.raises(TransientError, match="unreachable"):
        provider.access_token()


def test_only_a_refused_certificate_is_a_permanent_tls_failure(
    server: OAuthServer, clock: FrozenClock, self_signed_certificate: SelfSignedCertificate
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(self_signed_certificate.cert, self_signed_certificate.key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def handshake() -> None:
            connection, _ = listener.accept()
            with contextlib.suppress(OSError), context.wrap_socket(connection, server_side=True):
                pass

        serving = threading.Thread(target=handshake, daemon=True)
        serving.start()
        untrusted = generic(server, token_url=f"https://127.0.0.1:{port}/token")
        with pytest.raises(PermanentError, match="TLS certificate verification failed"):
            refresh(untrusted, _expired_record(untrusted), clock)
        serving.join(10)
    # TLS spoken to a server that answers in plain HTTP: a proxy's doing, not the certificate.
    plain = generic(server, token_url=server.token_url.replace("http://", "https://"))
    with pytest.raises(TransientError, match="TLS failed"):
        refresh(plain, _expired_record(plain), clock)


def test_invalidate_forces_exactly_one_refresh(
    server: OAuthServer, clock: FrozenClock, tmp_path: Path
) -> None:
    provider = signed_in(server, generic(server), TokenStore(tmp_path), clock)
    token = provider.access_token()
    provider.invalidate()
    fresh = provider.access_token()
    assert fresh != token and provider.access_token() == fresh
    assert server.grants.count("refresh_token") == 1


def test_a_revoked_refresh_token_asks_for_a_new_sign_in_and_is_not_offered_again(
    server: OAuthServer, clock: FrozenClock, tmp_path: Path
) -> None:
    store, sign_in = TokenStore(tmp_path), generic(server)
    provider = signed_in(server, sign_in, store, clock)
    server.revoke_refresh_tokens()
    clock.advance(timedelta(hours=1))
    with pytest.raises(SignInRequired) as caught:
        provider.access_token()
    message = str(caught.value)
    assert message.startswith(
        f"mailbox support: token refresh at {server.token_url}: refused: invalid_grant"
    )
    assert message.endswith("run mailbridge oauth login --mailbox support")
    assert provider.problem == message
    assert json.loads(store.path(sign_in).read_text())["problem"] == message  # for `status`
    asked = len(server.grants)
    with pytest.raises(SignInRequired):
        TokenProvider(sign_in, store, clock).access_token()  # a restart does not retry it
    assert len(server.grants) == asked

    # A new sign-in (as `mailbridge oauth login` in another process) is picked up.
    signed_in(server, sign_in, store, clock)
    assert server.user_for(provider.access_token()) == USER
    assert provider.problem is None


def test_no_sign_in_yet_names_the_command(
    server: OAuthServer, clock: FrozenClock, tmp_path: Path
) -> None:
    provider = TokenProvider(generic(server, "sales"), TokenStore(tmp_path), clock)
    with pytest.raises(
        SignInRequired,
        match="mailbox sales is not signed in to generic yet: "
        "run mailbridge oauth login --mailbox sales",
    ):
        provider.access_token()
    assert server.grants == []


def test_a_sign_in_made_for_another_client_is_not_used(
    server: OAuthServer, clock: FrozenClock, tmp_path: Path
) -> None:
    store = TokenStore(tmp_path)
    signed_in(server, generic(server), store, clock)
    other = TokenProvider(generic(server, client_id="another-app"), store, clock)
    for _ in range(2):  # the same answer every time, not "not signed in yet" the next
        with pytest.raises(SignInRequired, match="another client_id or token endpoint"):
            other.access_token()


def test_a_damaged_token_file_asks_for_a_new_sign_in(
    server: OAuthServer, clock: FrozenClock, tmp_path: Path
) -> None:
    store, sign_in = TokenStore(tmp_path), generic(server)
    store.directory.mkdir()
    store.path(sign_in).write_text("{not json")
    with pytest.raises(
        SignInRequired,
        match=r"the token file .*mailbox-support.json is "
        r"unusable .*run mailbridge oauth login",
    ):
        TokenProvider(sign_in, store, clock).access_token()


def test_the_token_endpoint_refusing_the_client_names_it(
    server: OAuthServer, clock: FrozenClock
) -> None:
    sign_in = generic(server, client_id="typo-app")
    with pytest.raises(OAuthError) as caught:
        start_device_login(sign_in)
    assert str(caught.value) == (
        f"mailbox support: device authorization at {server.device_authorization_url}: "
        "refused: invalid_client: unknown client_id 'typo-app' (check client_id 'typo-app' "
        "and its secret)"
    )


def test_an_unreachable_token_endpoint_is_transient(clock: FrozenClock, tmp_path: Path) -> None:
    with OAuthServer() as gone:
        sign_in = generic(gone)
    store = TokenStore(tmp_path)
    store.save(sign_in, _expired_record(sign_in))
    with pytest.raises(
        TransientError,
        match="token refresh at http://127.0.0.1:.*/token: unreachable: ConnectionError",
    ):
        TokenProvider(sign_in, store, clock).access_token()


def _expired_record(sign_in: SignIn) -> TokenRecord:
    return TokenRecord(
        sign_in.account,
        sign_in.client_id,
        sign_in.endpoints.token_url,
        sign_in.scopes,
        START - timedelta(hours=2),
        "at-old",
        START - timedelta(hours=1),
        "rt-old",
    )


def test_a_declined_device_sign_in_says_so(server: OAuthServer, clock: FrozenClock) -> None:
    sign_in = generic(server)
    code = start_device_login(sign_in)
    with pytest.raises(OAuthError, match="the sign-in was declined at"):
        finish_device_login(sign_in, code, clock, sleep=lambda _: server.deny(code.user_code))


def test_the_device_flow_waits_while_pending_and_slows_down_when_told(
    server: OAuthServer, clock: FrozenClock
) -> None:
    sign_in = generic(server)
    code = start_device_login(sign_in)
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        clock.advance(timedelta(seconds=seconds))
        if len(pauses) == 2:
            server.interval = 60  # the next poll comes "too soon": slow_down
        if len(pauses) == 3:
            server.interval = 1
        if len(pauses) == 4:
            server.approve(code.user_code)

    record = finish_device_login(sign_in, code, clock, sleep=sleep)
    assert server.user_for(record.access_token) == USER
    assert pauses == [1, 1, 6, 6]  # RFC 8628 3.5: five seconds more after slow_down


def test_client_credentials_need_no_sign_in_and_keep_nothing(
    clock: FrozenClock, tmp_path: Path
) -> None:
    with OAuthServer(client_secret="app-s3cret", clock=lambda: clock.now().timestamp()) as app:
        sign_in = generic(app, flow="client_credentials", client_secret_env="X")
        sign_in = _with_secret(sign_in, "app-s3cret")
        store = TokenStore(tmp_path)
        provider = TokenProvider(sign_in, store, clock)
        token = provider.access_token()
        assert app.user_for(token) == USER and app.grants == ["client_credentials"]
        clock.advance(timedelta(minutes=56))
        assert provider.access_token() != token
        assert app.requests[-1]["scope"] == "mail"
        assert not store.directory.exists()
        wrong = _with_secret(sign_in, "wrong")
        with pytest.raises(OAuthError, match="invalid_client"):
            client_credentials_token(wrong, clock)


def _with_secret(sign_in: SignIn, secret: str) -> SignIn:
    return replace(sign_in, client_secret=secret)


def test_oauth_errors_are_permanent_delivery_errors() -> None:
    # The pollers and the outbox treat them like a refused login: not the mail's fault.
    assert issubclass(SignInRequired, OAuthError) and issubclass(OAuthError, PermanentError)
