"""OAuth2 at run time against real servers: Dovecot checking XOAUTH2/OAUTHBEARER tokens with
its oauth2 passdb, an aiosmtpd sink doing the same for SMTP, both asking
tests/support/oauth_server.py.
Refresh before expiry, refresh-and-retry once when a server refuses a token, a clear
failure when that does not help; and the daemon keeping its other mailboxes going while one
waits for a new sign-in, with no token or secret in its logs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosmtplib
import pytest
from imapclient import IMAPClient

from mailbridge.adapters import imap as imap_adapter
from mailbridge.adapters import smtp as smtp_adapter
from mailbridge.adapters.imap import ImapMailbox, ImapSettings
from mailbridge.adapters.smtp import SmtpConnection, SmtpSettings, send_message
from mailbridge.app import build_app
from mailbridge.cli.status import status_document
from mailbridge.clock import FrozenClock
from mailbridge.config import config_from_dict
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.errors import PermanentError
from mailbridge.oauth.accounts import sign_ins
from mailbridge.oauth.endpoint import SignInRequired
from mailbridge.oauth.tokens import TokenProvider, TokenProviders, TokenStore
from mailbridge.outbound.send import SendReport, send_pending
from mailbridge.service.daemon import Daemon as Daemon_
from mailbridge.service.metrics import TokenCollector
from tests.support.builders import drive_daemon, mail, make_config, write_config_file
from tests.support.daemon_process import (
    IMAP_SECRET,
    WAIT,
    Daemon,
    eventually,
    free_port,
    healthz,
    metrics,
    start,
)
from tests.support.dovecot import DovecotServer, require_dovecot
from tests.support.oauth import HELPDESK, OAUTH_SECRET, USER, cli, generic, signed_in
from tests.support.oauth_server import OAuthServer
from tests.support.oauth_smtp import AuthAttempt, OAuthSmtpSink
from tests.support.outbox import NO_IMAP, queue, row

__all__ = ["start"]  # the fixture running `mailbridge run`

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MESSAGE = mail(to=USER)


@pytest.fixture
def clock() -> FrozenClock:
    # Dovecot reads the introspection answer's "exp" with the real clock: start there.
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def server(clock: FrozenClock) -> Iterator[OAuthServer]:
    with OAuthServer(
        clock=lambda: clock.now().timestamp(), users=(USER, "other@example.test")
    ) as running:
        yield running


@pytest.fixture
def dovecot(server: OAuthServer) -> Iterator[DovecotServer]:
    with DovecotServer(oauth=server) as running:
        yield running


@pytest.fixture
def provider(server: OAuthServer, clock: FrozenClock, tmp_path: Path) -> TokenProvider:
    return signed_in(server, generic(server), TokenStore(tmp_path), clock)


def imap(dovecot: DovecotServer, provider: TokenProvider, user: str = USER) -> ImapSettings:
    return ImapSettings(
        host=dovecot.host,
        port=dovecot.port,
        security="none",
        username=user,
        password="",
        oauth=provider,
    )


def refused_logins(dovecot: DovecotServer) -> int:
    return dovecot.log().count("oauth2 failed")


# --- IMAP (Dovecot's oauth2 passdb) ---------------------------------------------------------


def test_imap_signs_in_with_xoauth2_and_refreshes_before_the_token_runs_out(
    dovecot: DovecotServer, server: OAuthServer, provider: TokenProvider, clock: FrozenClock
) -> None:
    dovecot.append(MESSAGE)
    with ImapMailbox(imap(dovecot, provider)) as box:
        assert len(box.uids_after(0)) == 1
    assert server.grants == ["urn:ietf:params:oauth:grant-type:device_code"]

    clock.advance(timedelta(minutes=56))  # 4 minutes left: a new token before the login
    with ImapMailbox(imap(dovecot, provider)) as box:
        assert len(box.uids_after(0)) == 1
    assert server.grants[1:] == ["refresh_token"]
    assert refused_logins(dovecot) == 0
    assert "method=XOAUTH2" in dovecot.log()


def test_a_token_the_server_refuses_is_refreshed_once_and_the_login_retried(
    dovecot: DovecotServer, server: OAuthServer, provider: TokenProvider
) -> None:
    provider.access_token()
    server.expire_access_tokens()  # still "valid" by our clock; Dovecot's introspection says no

    with ImapMailbox(imap(dovecot, provider)) as box:
        box.uids_after(0)

    assert server.grants.count("refresh_token") == 1
    assert refused_logins(dovecot) == 1


def test_when_a_fresh_token_is_refused_too_the_error_names_the_answer(
    dovecot: DovecotServer, server: OAuthServer, provider: TokenProvider
) -> None:
    # Signed in as support@, but the mailbox logs in as other@: Dovecot refuses either token.
    with pytest.raises(PermanentError) as caught:
        ImapMailbox(imap(dovecot, provider, "other@example.test")).connect()
    message = str(caught.value)
    assert message.startswith(
        f"IMAP connect to folder 'INBOX' on {dovecot.host}:{dovecot.port}"
        ": login refused for user 'other@example.test': AUTHENTICATE "
        "XOAUTH2 answered: [AUTHENTICATIONFAILED]"
    )
    assert "(server said: status 401, needs scope 'mail')" in message
    assert "again with a freshly refreshed token" in message
    assert server.grants.count("refresh_token") == 1  # once, not in a loop
    assert refused_logins(dovecot) == 2


def test_a_revoked_refresh_token_stops_before_the_imap_server_is_bothered(
    dovecot: DovecotServer, server: OAuthServer, provider: TokenProvider, clock: FrozenClock
) -> None:
    server.revoke_refresh_tokens()
    clock.advance(timedelta(hours=1))
    with pytest.raises(SignInRequired, match="run mailbridge oauth login --mailbox support$"):
        ImapMailbox(imap(dovecot, provider)).connect()
    assert refused_logins(dovecot) == 0 and "Login:" not in dovecot.log()


def test_oauthbearer_is_spoken_too(dovecot: DovecotServer, provider: TokenProvider) -> None:
    client = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=10)
    try:
        imap_adapter._authenticate(
            client, "OAUTHBEARER", USER, provider.access_token(), dovecot.host, dovecot.port
        )
        assert client.select_folder("INBOX")
    finally:
        client.logout()
    assert "method=OAUTHBEARER" in dovecot.log()


def test_microsoft_sized_tokens_sign_in_to_imap_and_smtp(
    clock: FrozenClock, tmp_path: Path
) -> None:
    """Access tokens of about 2 KB, as Microsoft issues: IMAP sends them after the
    AUTHENTICATE continuation, SMTP in the AUTH line itself (about 3 KB, RFC 4954 allows
    12,288 octets)."""
    with (
        OAuthServer(
            clock=lambda: clock.now().timestamp(), users=(USER,), token_bytes=1600
        ) as server,
        DovecotServer(oauth=server) as dovecot,
        OAuthSmtpSink(server) as sink,
    ):
        provider = signed_in(server, generic(server), TokenStore(tmp_path), clock)
        assert len(provider.access_token()) > 2000
        dovecot.append(MESSAGE)
        with ImapMailbox(imap(dovecot, provider)) as box:
            assert len(box.uids_after(0)) == 1
        asyncio.run(send_message(smtp(sink, provider), MESSAGE, USER, ["ada@customer.example"]))
        assert len(sink.wait_for(1)) == 1
        assert refused_logins(dovecot) == 0 and "method=XOAUTH2" in dovecot.log()
    assert sink.auth_attempts == [AuthAttempt("XOAUTH2", USER, True)]


def test_an_smtp_server_refusing_a_long_auth_line_is_not_blamed_on_the_token(
    clock: FrozenClock, tmp_path: Path
) -> None:
    with (
        OAuthServer(
            clock=lambda: clock.now().timestamp(), users=(USER,), token_bytes=1600
        ) as server,
        OAuthSmtpSink(server, long_auth_lines=False) as sink,
    ):
        provider = signed_in(server, generic(server), TokenStore(tmp_path), clock)
        with pytest.raises(PermanentError) as caught:
            asyncio.run(send_message(smtp(sink, provider), MESSAGE, USER, ["ada@customer.example"]))
    assert str(caught.value) == (
        f"SMTP login via {sink.host}:{sink.port}: login refused for user '{USER}': 500 AUTH "
        "XOAUTH2 answered: Command line too long"
    )
    assert server.grants.count("refresh_token") == 0, "a new token would not be shorter"


# --- SMTP (the aiosmtpd sink with XOAUTH2/OAUTHBEARER) ----------------------------------


def smtp(sink: SmtpSink, provider: TokenProvider, user: str = USER) -> SmtpSettings:
    return SmtpSettings(
        host=sink.host, port=sink.port, security="none", username=user, oauth=provider
    )


@pytest.mark.parametrize("error_challenge", [True, False], ids=["gmail", "microsoft"])
def test_smtp_refreshes_a_refused_token_once_and_sends(
    server: OAuthServer, provider: TokenProvider, error_challenge: bool
) -> None:
    with OAuthSmtpSink(server, error_challenge=error_challenge) as sink:
        asyncio.run(send_message(smtp(sink, provider), MESSAGE, USER, ["ada@customer.example"]))
        server.expire_access_tokens()
        asyncio.run(send_message(smtp(sink, provider), MESSAGE, USER, ["ada@customer.example"]))
        assert len(sink.wait_for(2)) == 2
    assert sink.auth_attempts == [
        AuthAttempt("XOAUTH2", USER, True),
        AuthAttempt("XOAUTH2", USER, False),
        AuthAttempt("XOAUTH2", USER, True),
    ]
    assert server.grants.count("refresh_token") == 1


def test_smtp_gives_up_after_one_refresh_naming_the_servers_answer(
    server: OAuthServer, provider: TokenProvider
) -> None:
    with OAuthSmtpSink(server) as sink, pytest.raises(PermanentError) as caught:
        asyncio.run(
            send_message(
                smtp(sink, provider, "other@example.test"), MESSAGE, USER, ["ada@customer.example"]
            )
        )
    assert str(caught.value) == (
        f"SMTP login via {sink.host}:{sink.port}: login refused for user 'other@example.test': "
        "535 AUTH XOAUTH2 answered: 5.7.8 Authentication credentials invalid (server said: "
        "status 401, needs scope 'mail'), again with a freshly refreshed token: check the "
        "scopes the app was granted and that the sign-in was made as other@example.test"
    )
    assert server.grants.count("refresh_token") == 1 and sink.received == []


def test_smtp_oauthbearer(server: OAuthServer, provider: TokenProvider) -> None:
    async def login() -> aiosmtplib.SMTPAuthenticationError | None:
        connection = SmtpConnection(SmtpSettings(host=sink.host, port=sink.port, security="none"))
        await connection.connect()
        try:
            assert connection._client is not None
            await connection._client.ehlo()
            return await smtp_adapter._authenticate(
                connection._client,
                "OAUTHBEARER",
                USER,
                provider.access_token(),
                sink.host,
                sink.port,
            )
        finally:
            await connection.close()

    with OAuthSmtpSink(server) as sink:
        assert asyncio.run(login()) is None
        server.expire_access_tokens()
        refusal = asyncio.run(login())
    assert refusal is not None and refusal.code == 535
    assert "(server said: status invalid_token, needs scope 'mail')" in refusal.message
    assert sink.auth_attempts == [
        AuthAttempt("OAUTHBEARER", USER, True),
        AuthAttempt("OAUTHBEARER", USER, False),
    ]


# --- the daemon: one mailbox signed out, the others carry on -------------------------------


def oauth_config(
    tmp_path: Path,
    pymap: EmbeddedImapServer,
    sink: SmtpSink,
    db_url: str,
    dovecot: DovecotServer,
    server: OAuthServer,
    listen: int,
) -> Path:
    helpdesk = HELPDESK.format(
        user=USER,
        host=dovecot.host,
        port=dovecot.port,
        client_id=server.client_id,
        token_url=server.token_url,
        device_url=server.device_authorization_url,
    )
    return write_config_file(
        tmp_path,
        pymap,
        sink,
        db_url,
        password_env="MB_SERVICE_IMAP_PASSWORD",
        listen=listen,
        extra_mailbox=helpdesk,
    )


def issued_secrets(server: OAuthServer) -> set[str]:
    """Every token the server ever handed out, and the client's secret."""
    tokens = {*server._access, *server._refresh}
    tokens |= {
        form[key]
        for form in server.requests
        for key in ("device_code", "refresh_token")
        if key in form
    }
    return tokens | {OAUTH_SECRET}


def test_a_revoked_sign_in_makes_its_mailbox_unhealthy_while_the_others_carry_on(
    tmp_path: Path, sqlite_url: str, start: Callable[..., Daemon]
) -> None:
    require_dovecot()
    # Five-second tokens: the daemon refreshes (and finds the revocation) within seconds.
    with (
        OAuthServer(client_secret=OAUTH_SECRET, access_lifetime=5) as server,
        EmbeddedImapServer(password=IMAP_SECRET) as pymap,
        SmtpSink() as sink,
        DovecotServer(oauth=server) as dovecot,
    ):
        port = free_port()
        config = oauth_config(tmp_path, pymap, sink, sqlite_url, dovecot, server, port)
        login = cli(config, "oauth", "login", "--mailbox", "helpdesk", consent=server.approve)
        assert login.returncode == 0, login.stdout + login.stderr
        token_file = tmp_path / "oauth" / "mailbox-helpdesk.json"
        assert f"kept in {token_file}" in login.stdout
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"

        dovecot.append(mail("Ada <ada@customer.example>", "Via OAuth", to=USER))
        daemon = start(config, "-v", env={"MB_OAUTH_SECRET": OAUTH_SECRET})
        sink.wait_for(1, WAIT)  # the acknowledgement of the mail read over XOAUTH2
        eventually(lambda: server.grants.count("refresh_token") >= 1, "a refresh")

        server.revoke_refresh_tokens()
        daemon.wait_for_log("run mailbridge oauth login --mailbox helpdesk")
        # Given up for an instance that can sign in: none here, so it stays unhealthy.
        daemon.wait_for_log("mailbox helpdesk: handed back for another instance to poll")
        status, health = eventually(lambda: _unhealthy(port), "/healthz to say so")
        assert status == 503
        detail = health["components"]["mailbox:helpdesk"]
        assert detail["state"] == "signed-out" and not detail["ok"]
        assert detail["detail"].endswith("run mailbridge oauth login --mailbox helpdesk")
        assert health["components"]["mailbox:support"]["ok"]
        assert list(health["failing"]) == ["mailbox:helpdesk"]

        pymap.append(mail("Bob <bob@customer.example>", "Via password"))
        received = sink.wait_for(2, WAIT)  # the other mailbox carries on
        assert received[1].recipients == ("bob@customer.example",)
        samples = metrics(port)
        assert (
            samples[("mailbridge_oauth_token_seconds_remaining", (("account", "helpdesk"),))] <= 5
        )
        assert samples[("mailbridge_component_healthy", (("component", "mailbox:helpdesk"),))] == 0
        assert samples[("mailbridge_oauth_signed_in", (("account", "helpdesk"),))] == 0

        report = cli(config, "status", "--json")
        assert report.returncode == 1
        document = json.loads(report.stdout)
        assert document["oauth"]["helpdesk"]["state"] == "signed-out"
        assert any(
            note.endswith("run mailbridge oauth login --mailbox helpdesk")
            for note in document["attention"]
        )
        assert daemon.stop() == 0
    logs = login.stdout + login.stderr + daemon.log + report.stdout + report.stderr
    assert "access token refreshed" in daemon.log
    secrets = issued_secrets(server)
    assert len(secrets) > 5  # device code, access and refresh tokens, the client secret
    assert [secret for secret in secrets if secret in logs] == []


@pytest.mark.postgres
def test_an_instance_that_cannot_sign_in_leaves_the_mailbox_to_one_that_can(
    tmp_path: Path, postgres_url: str
) -> None:
    """Several instances, each with its own sign-ins: one without the mailbox's never takes
    its lease (it says why, once), so the instance that has the sign-in polls it."""
    require_dovecot()
    with (
        OAuthServer(client_secret=OAUTH_SECRET) as server,
        EmbeddedImapServer(password=IMAP_SECRET) as pymap,
        SmtpSink() as sink,
        DovecotServer(oauth=server) as dovecot,
        contextlib.ExitStack() as running,
    ):
        configs, ports = {}, {}
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            ports[name] = free_port()
            configs[name] = oauth_config(
                tmp_path / name, pymap, sink, postgres_url, dovecot, server, ports[name]
            )
        login = cli(configs["b"], "oauth", "login", "--mailbox", "helpdesk", consent=server.approve)
        assert login.returncode == 0, login.stdout + login.stderr

        a = Daemon(tmp_path / "a", configs["a"], env={"MB_OAUTH_SECRET": OAUTH_SECRET})
        running.callback(a.close)
        a.wait_for_notice("READY=1")
        _status, health = eventually(lambda: _unhealthy(ports["a"]), "a to say it cannot")
        assert health["components"]["mailbox:support"]["ok"]  # a polls the other one
        assert "Login:" not in dovecot.log(), "a must not even try"

        b = Daemon(tmp_path / "b", configs["b"], env={"MB_OAUTH_SECRET": OAUTH_SECRET})
        running.callback(b.close)
        b.wait_for_notice("READY=1")
        dovecot.append(mail("Ada <ada@customer.example>", "Via OAuth", to=USER))
        assert sink.wait_for(1, WAIT)[0].recipients == ("ada@customer.example",)
        eventually(
            lambda: _state(ports["a"], "mailbox:helpdesk") == "elsewhere", "a to see b polling it"
        )
        assert healthz(ports["a"])[0] == 200
        assert a.stop() == 0 and b.stop() == 0
    assert a.log.count("run mailbridge oauth login --mailbox helpdesk") == 1
    assert "mailbox helpdesk: taken over" not in a.log


def _state(port: int, name: str) -> object:
    components = healthz(port)[1].get("components", {})
    return components.get(name, {}).get("state")


def _unhealthy(port: int) -> tuple[int, dict[str, object]] | None:
    status, health = healthz(port)
    components = health.get("components", {})
    assert isinstance(components, dict)
    state = components.get("mailbox:helpdesk", {})
    return (status, health) if state.get("state") == "signed-out" else None


def test_a_missing_sign_in_shows_in_smtp_health_and_status(
    tmp_path: Path, sqlite_url: str, server: OAuthServer
) -> None:
    oauth2 = {
        "provider": "generic",
        "client_id": server.client_id,
        "token_url": server.token_url,
        "device_authorization_url": server.device_authorization_url,
        "scopes": ["mail"],
    }
    config = config_from_dict(
        {
            "database": {"url": sqlite_url},
            "mailbox": [
                {
                    "name": "helpdesk",
                    "address": USER,
                    "host": "127.0.0.1",
                    "security": "none",
                    "username": USER,
                    "auth": "oauth2",
                    "oauth2": oauth2,
                }
            ],
            "smtp": {
                "host": "127.0.0.1",
                "port": 1,
                "security": "none",
                "from": USER,
                "auth": "oauth2",
                "oauth2": {"mailbox": "helpdesk"},
            },
            "sla": [{"name": "standard", "first_response": "8h", "resolution": "5d"}],
            "service": {"data_dir": str(tmp_path)},
        },
        tmp_path / "test.toml",
        {},
    )
    app = build_app(config)
    try:
        daemon = Daemon_(app)
        assert daemon.sender.smtp.username == USER  # the shared sign-in's account
        with pytest.raises(SignInRequired):
            asyncio.run(SmtpConnection(daemon.sender.smtp).connect())
        daemon.sender._smtp_health(SendReport(deferred=1, refused=True))
        smtp_state = daemon.health.get("smtp")
        assert smtp_state is not None and smtp_state.state == "signed-out"
        assert smtp_state.detail == (
            "mailbox helpdesk is not signed in to generic yet: run "
            "mailbridge oauth login --mailbox helpdesk"
        )
        document = status_document(app)
        assert document["oauth"] == {
            "helpdesk": {
                "provider": "generic",
                "flow": "device",
                "state": "signed-out",
                "access_token_expires_at": None,
                "problem": smtp_state.detail,
            }
        }
        assert smtp_state.detail in document["attention"]
    finally:
        app.close()
    assert server.grants == []  # nothing to refresh: no request was made


def generic_oauth2(server: OAuthServer) -> dict[str, object]:
    return {
        "provider": "generic",
        "client_id": server.client_id,
        "token_url": server.token_url,
        "device_authorization_url": server.device_authorization_url,
        "scopes": ["mail"],
    }


def xoauth2_logins(dovecot: DovecotServer) -> int:
    return dovecot.log().count("method=XOAUTH2")


async def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"still waiting for {what}"
        await asyncio.sleep(0.05)


def test_each_session_logs_in_again_before_its_own_token_runs_out_and_a_sign_out_is_told_once(
    tmp_path: Path,
    sqlite_url: str,
    dovecot: DovecotServer,
    server: OAuthServer,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The inbox and the Sent folder: two sessions on one sign-in.
    mailbox = {
        "name": "support",
        "address": USER,
        "host": dovecot.host,
        "port": dovecot.port,
        "security": "none",
        "username": USER,
        "poll_interval": "1s",
        "staff_mode": "observe",
        "auth": "oauth2",
        "oauth2": generic_oauth2(server),
    }
    dovecot.append(mail(to=USER), "Sent")
    with SmtpSink() as sink:
        config = make_config(
            tmp_path, database_url=sqlite_url, imap=dovecot, smtp=sink, mailbox=[mailbox]
        )
        signed_in(server, sign_ins(config)[0], TokenStore(tmp_path), clock)
        app = build_app(config, clock=clock)

        async def scenario(daemon: Daemon_) -> None:
            await until(lambda: xoauth2_logins(dovecot) == 2, "both sessions to log in")
            clock.advance(timedelta(minutes=56))  # four minutes left of the token of both
            # The SMTP sender sharing the sign-in refreshes first (in the loop's thread, so
            # before either poller looks): both sessions still hold the old token, and log
            # in again (with the new one) before a server such as Exchange ends them.
            provider = daemon.tokens.for_mailbox(config.mailbox[0])
            assert provider is not None
            provider.access_token()
            await until(lambda: xoauth2_logins(dovecot) == 4, "both to log in again")
            assert server.grants.count("refresh_token") == 1

            server.revoke_refresh_tokens()
            clock.advance(timedelta(hours=1))
            components = ("mailbox:support", "mailbox:support (Sent)")

            def both_signed_out() -> bool:
                states = [daemon.health.get(name) for name in components]
                return all(s is not None and s.state == "signed-out" for s in states)

            await until(both_signed_out, "both sessions to be signed out")
            reconnects = daemon.metrics.registry.get_sample_value(
                "mailbridge_imap_reconnects_total", {"mailbox": "support"}
            )
            assert not reconnects  # waiting for a person is not a reconnection

        try:
            with caplog.at_level(logging.INFO):
                drive_daemon(app, scenario)
        finally:
            app.close()
    told = [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR
        and "run mailbridge oauth login --mailbox support" in r.getMessage()
    ]
    assert len(told) == 1, [r.getMessage() for r in told]


def test_while_the_smtp_sign_in_is_missing_mail_waits_without_using_up_attempts(
    tmp_path: Path,
    sqlite_url: str,
    server: OAuthServer,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with OAuthSmtpSink(server) as sink:
        config = make_config(tmp_path, database_url=sqlite_url, imap=NO_IMAP, smtp=sink)
        config = config.model_copy(
            update={"smtp": config.smtp.model_copy(update={"give_up_after": timedelta(hours=1)})}
        )
        app = build_app(config, clock=clock)
        try:
            sign_in = generic(server)
            provider = TokenProvider(sign_in, TokenStore(tmp_path), clock)
            settings = smtp(sink, provider)
            waiting = queue(app, "ada@customer.example")
            for _ in range(3):  # the daemon's passes and probes, over more than give_up_after
                report = asyncio.run(send_pending(app, settings))
                assert report == SendReport(deferred=1, refused=True)
                clock.advance(timedelta(minutes=40))
            stored = row(app, waiting)
            assert stored.state == "pending" and stored.attempts == 0
            told = [r for r in caplog.records if r.levelno >= logging.WARNING]
            assert [r.getMessage() for r in told] == [
                "outbox: sending paused: mailbox support is not signed in to generic yet: run "
                "mailbridge oauth login --mailbox support"
            ]

            signed_in(server, sign_in, TokenStore(tmp_path), clock)
            assert asyncio.run(send_pending(app, settings)) == SendReport(sent=1)
            assert row(app, waiting).state == "sent" and len(sink.wait_for(1)) == 1
        finally:
            app.close()


def test_the_smtp_sign_in_and_a_mailbox_named_smtp_are_told_apart(
    tmp_path: Path, sqlite_url: str, server: OAuthServer, clock: FrozenClock
) -> None:
    config = config_from_dict(
        {
            "database": {"url": sqlite_url},
            "mailbox": [
                {
                    "name": "smtp",
                    "address": USER,
                    "host": "127.0.0.1",
                    "security": "none",
                    "username": USER,
                    "auth": "oauth2",
                    "oauth2": generic_oauth2(server),
                }
            ],
            "smtp": {
                "host": "127.0.0.1",
                "port": 1,
                "security": "none",
                "from": USER,
                "username": "other@example.test",
                "auth": "oauth2",
                "oauth2": generic_oauth2(server),
            },
            "sla": [{"name": "standard", "first_response": "8h", "resolution": "5d"}],
            "service": {"data_dir": str(tmp_path)},
        },
        tmp_path / "test.toml",
        {},
    )
    tokens = TokenProviders(config, clock)
    assert sorted(tokens.all()) == ["[smtp]", "smtp"]
    store = TokenStore(tmp_path)
    for sign_in in sign_ins(config):
        signed_in(server, sign_in, store, clock).access_token()
    for provider in tokens.all().values():
        provider.access_token()
    family, signed = TokenCollector(tokens).collect()
    assert sorted(sample.labels["account"] for sample in family.samples) == ["[smtp]", "smtp"]
    assert {s.labels["account"]: s.value for s in signed.samples} == {"[smtp]": 1, "smtp": 1}
    app = build_app(config, clock=clock)
    try:
        document = status_document(app)
    finally:
        app.close()
    assert {k: v["state"] for k, v in document["oauth"].items()} == {
        "[smtp]": "signed-in",
        "smtp": "signed-in",
    }
