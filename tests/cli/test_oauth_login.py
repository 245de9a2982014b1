"""`mailbridge oauth login` and `mailbridge oauth test` as an operator runs them: the device
flow approved at the test's OAuth server, the browser flow with PKCE (Google's way), client
credentials, and a test that names the step that fails."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest

from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from tests.support.builders import mail, write_config_file
from tests.support.daemon_process import IMAP_SECRET
from tests.support.dovecot import DovecotServer, require_dovecot
from tests.support.oauth import HELPDESK, OAUTH_SECRET, USER, cli
from tests.support.oauth_server import OAuthServer
from tests.support.oauth_smtp import AuthAttempt, OAuthSmtpSink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SHARED_SMTP = f'username = "{USER}"\nauth = "oauth2"\n\n[smtp.oauth2]\nmailbox = "helpdesk"\n'


@pytest.fixture
def server() -> Iterator[OAuthServer]:
    with OAuthServer(client_secret=OAUTH_SECRET) as running:
        yield running


def config_for(
    tmp_path: Path,
    server: OAuthServer,
    *,
    imap_port: int = 1,
    smtp: SmtpSink | None = None,
    smtp_extra: str = "",
    oauth2_extra: str = "",
    pymap: EmbeddedImapServer | None = None,
) -> Path:
    """Mailbox "support" (a password, pymap) and "helpdesk" (OAuth2, on imap_port)."""
    helpdesk = (
        HELPDESK.format(
            user=USER,
            host="127.0.0.1",
            port=imap_port,
            client_id=server.client_id,
            token_url=server.token_url,
            device_url=server.device_authorization_url,
        )
        + oauth2_extra
    )
    with EmbeddedImapServer(password=IMAP_SECRET) as unused:  # only its address is written
        return write_config_file(
            tmp_path,
            pymap or unused,
            smtp or unused,
            "sqlite:///" + str(tmp_path / "mb.db"),
            password_env="MB_SERVICE_IMAP_PASSWORD",
            extra_mailbox=helpdesk,
            smtp_extra=smtp_extra,
        )


def test_first_sign_in_by_device_code_keeps_the_refresh_token_owner_only(
    tmp_path: Path, server: OAuthServer
) -> None:
    config = config_for(tmp_path, server)
    result = cli(config, "oauth", "login", "--mailbox", "helpdesk", consent=server.approve)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(
        r"^To sign in mailbox helpdesk as support@example.test, open "
        rf"{server.url}/device and enter the code \S+$",
        result.stdout,
        re.M,
    )
    token_file = tmp_path / "oauth" / "mailbox-helpdesk.json"
    assert f"The refresh token is kept in {token_file}, readable by this user only" in (
        result.stdout
    )
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    assert oct(token_file.parent.stat().st_mode & 0o777) == "0o700"
    record = json.loads(token_file.read_text())
    assert server.user_for(record["access_token"]) == USER
    assert record["refresh_token"] and record["scopes"] == ["mail"]
    assert server.requests[0]["client_secret"] == OAUTH_SECRET  # from client_secret_env
    assert record["access_token"] not in result.stdout + result.stderr
    assert OAUTH_SECRET not in result.stdout + result.stderr
    status = cli(config, "status")
    assert re.search(
        r"^oauth2 helpdesk \(generic\): signed-in, access token until \S+$", status.stdout, re.M
    ), status.stdout + status.stderr


def test_a_declined_sign_in_fails_and_keeps_nothing(tmp_path: Path, server: OAuthServer) -> None:
    config = config_for(tmp_path, server)
    result = cli(config, "oauth", "login", "--mailbox", "helpdesk", consent=server.deny)
    assert result.returncode == 1
    assert "mailbox helpdesk: the sign-in was declined at" in result.stderr
    assert not (tmp_path / "oauth" / "mailbox-helpdesk.json").exists()


def test_usage_mistakes_exit_2_and_say_why(tmp_path: Path, server: OAuthServer) -> None:
    config = config_for(tmp_path, server)
    unknown = cli(config, "oauth", "login", "--mailbox", "nope")
    assert unknown.returncode == 2
    assert "no [[mailbox]] named 'nope' (there are: support, helpdesk)" in unknown.stderr
    password = cli(config, "oauth", "test", "--mailbox", "support")
    assert password.returncode == 2
    assert "mailbox 'support': expected auth = \"oauth2\"" in password.stderr
    smtp = cli(config, "oauth", "login", "--smtp")
    assert smtp.returncode == 2 and 'smtp.auth: expected "oauth2" for --smtp' in smtp.stderr


def test_client_credentials_sign_in_keeps_nothing(tmp_path: Path, server: OAuthServer) -> None:
    config = config_for(tmp_path, server, oauth2_extra='flow = "client_credentials"\n')
    result = cli(config, "oauth", "login", "--mailbox", "helpdesk")
    assert result.returncode == 0, result.stderr
    assert "accepted the client credentials: an app token valid for 60 min" in result.stdout
    assert server.grants == ["client_credentials"]
    assert not (tmp_path / "oauth").exists()


# --- the browser (authorization-code) flow, as Google signs in -----------------------------


class CodeServer:
    """The authorization-code half of an OAuth2 server: what the browser consents to
    (`consent`) and the code exchange at /token, checking PKCE and the redirect address."""

    def __init__(self) -> None:
        self.codes: dict[str, dict[str, str]] = {}
        self.exchanges: list[dict[str, str]] = []
        self.access_token = "at-" + secrets.token_urlsafe(16)
        self.refresh_token = "rt-" + secrets.token_urlsafe(16)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                status, body = owner.exchange(form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def consent(self, authorization_url: str) -> str:
        """What the browser ends up at after the person allowed access."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorization_url).query).items()}
        code = secrets.token_urlsafe(12)
        self.codes[code] = query
        return f"{query['redirect_uri']}?state={query['state']}&code={code}&scope=x"

    def exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.exchanges.append(form)
        asked = self.codes.pop(form.get("code", ""), None)
        if asked is None or form.get("grant_type") != "authorization_code":
            return 400, {"error": "invalid_grant", "error_description": "unknown code"}
        verifier = form.get("code_verifier", "").encode()
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        if challenge.decode() != asked["code_challenge"] or asked["code_challenge_method"] != (
            "S256"
        ):
            return 400, {"error": "invalid_grant", "error_description": "PKCE check failed"}
        if form.get("redirect_uri") != asked["redirect_uri"]:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri differs"}
        return 200, {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_in": 3599,
            "token_type": "Bearer",
            "scope": asked["scope"],
        }

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def test_google_signs_in_in_a_browser_with_pkce_and_a_pasted_address(
    tmp_path: Path, server: OAuthServer
) -> None:
    codes = CodeServer()
    try:
        google = (
            f'provider = "google"\nclient_id = "123.apps.googleusercontent.com"\n'
            f'client_secret_env = "MB_OAUTH_SECRET"\ntoken_url = "{codes.url}/token"\n'
            f'authorization_url = "{codes.url}/auth"\n'
        )
        config = config_for(tmp_path, server)
        text = config.read_text()
        config.write_text(
            text[: text.index('provider = "generic"')] + google + text[text.index("[smtp]") :]
        )
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mailbridge",
                "--config",
                str(config),
                "oauth",
                "login",
                "--mailbox",
                "helpdesk",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "MB_SERVICE_IMAP_PASSWORD": IMAP_SECRET,
                "MB_OAUTH_SECRET": OAUTH_SECRET,
            },
        )
        assert process.stdout is not None and process.stdin is not None
        address = ""
        for line in process.stdout:
            if line.strip().startswith(f"{codes.url}/auth?"):
                address = line.strip()
            if "paste it here" in line:
                break
        process.stdin.write(codes.consent(address) + "\n")
        process.stdin.flush()
        out, err = process.communicate(timeout=60)
    finally:
        codes.close()
    assert process.returncode == 0, out + err
    asked = parse_qs(urlsplit(address).query)
    assert asked["scope"] == ["https://mail.google.com/"]
    assert asked["access_type"] == ["offline"] and asked["prompt"] == ["consent"]
    assert asked["redirect_uri"] == ["http://127.0.0.1:8400/"]
    assert asked["login_hint"] == [USER]
    assert codes.exchanges[0]["client_secret"] == OAUTH_SECRET
    record = json.loads((tmp_path / "oauth" / "mailbox-helpdesk.json").read_text())
    assert (record["access_token"], record["refresh_token"]) == (
        codes.access_token,
        codes.refresh_token,
    )
    assert codes.refresh_token not in out + err


# --- mailbridge oauth test -------------------------------------------------------------------


def test_oauth_test_signs_in_to_imap_and_smtp_and_names_the_failing_step(
    tmp_path: Path, server: OAuthServer
) -> None:
    with DovecotServer(oauth=server) as dovecot, OAuthSmtpSink(server) as sink:
        config = config_for(
            tmp_path, server, imap_port=dovecot.port, smtp=sink, smtp_extra=SHARED_SMTP
        )
        assert cli(config, "oauth", "login", "--smtp", consent=server.approve).returncode == 0
        good = cli(config, "oauth", "test", "--mailbox", "helpdesk")
        assert good.returncode == 0, good.stdout + good.stderr
        lines = good.stdout.splitlines()
        assert lines[0] == f"token: ok from {server.token_url}, valid for 60 min"
        assert lines[1] == (
            f"IMAP 127.0.0.1:{dovecot.port} as {USER}: ok, signed in and folder 'INBOX' selected"
        )
        assert lines[2] == f"SMTP 127.0.0.1:{sink.port} as {USER}: ok, signed in"
        assert sink.auth_attempts == [AuthAttempt("XOAUTH2", USER, True)]

        server.revoke_refresh_tokens()
        bad = cli(config, "oauth", "test", "--mailbox", "helpdesk")
    assert bad.returncode == 1
    assert bad.stdout == (
        f"token: FAILED: mailbox helpdesk: token refresh at {server.token_url}: refused: "
        "invalid_grant: the refresh token is unknown, used or revoked. The refresh token was "
        "revoked or has expired: run mailbridge oauth login --mailbox helpdesk\n"
    )


def test_oauth_test_reports_the_imap_answer(tmp_path: Path) -> None:
    require_dovecot()
    # The sign-in is other@'s, the mailbox logs in as support@: Dovecot says no.
    with (
        OAuthServer(client_secret=OAUTH_SECRET, users=(USER, "other@example.test")) as server,
        DovecotServer(oauth=server) as dovecot,
    ):
        config = config_for(tmp_path, server, imap_port=dovecot.port)
        login = cli(
            config,
            "oauth",
            "login",
            "--mailbox",
            "helpdesk",
            consent=lambda code: server.approve(code, "other@example.test"),
        )
        assert login.returncode == 0, login.stderr
        result = cli(config, "oauth", "test", "--mailbox", "helpdesk")
    assert result.returncode == 1
    first, second = result.stdout.splitlines()
    assert first.startswith("token: ok")
    assert second.startswith(
        f"IMAP 127.0.0.1:{dovecot.port} as {USER}: FAILED: IMAP connect "
        f"to folder 'INBOX' on 127.0.0.1:{dovecot.port}: login refused for "
        f"user '{USER}': AUTHENTICATE XOAUTH2 answered: "
        "[AUTHENTICATIONFAILED] Authentication failed. (server said: status "
        "401, needs scope 'mail'), again with a freshly refreshed token"
    )


def test_run_once_sends_through_the_shared_sign_in(tmp_path: Path, server: OAuthServer) -> None:
    with (
        DovecotServer(oauth=server) as dovecot,
        OAuthSmtpSink(server) as sink,
        EmbeddedImapServer(password=IMAP_SECRET) as pymap,
    ):
        config = config_for(
            tmp_path, server, imap_port=dovecot.port, smtp=sink, smtp_extra=SHARED_SMTP, pymap=pymap
        )
        assert (
            cli(
                config, "oauth", "login", "--mailbox", "helpdesk", consent=server.approve
            ).returncode
            == 0
        )
        dovecot.append(mail("Ada <ada@customer.example>", "Over OAuth", to=USER))
        once = cli(config, "run", "--once")
        assert once.returncode == 0, once.stderr
        assert len(sink.wait_for(1)) == 1  # the acknowledgement, sent with XOAUTH2
        assert sink.auth_attempts == [AuthAttempt("XOAUTH2", USER, True)]

        server.revoke_refresh_tokens()
        server.expire_access_tokens()
        dovecot.append(mail("Bob <bob@customer.example>", "Too late", to=USER))
        pymap.append(mail("Cy <cy@customer.example>", "By password"))
        again = cli(config, "run", "--once")
    assert again.returncode == 1
    assert (
        f"ERROR   mailbridge.service.daemon: mailbox helpdesk: token refresh at {server.token_url}"
    ) in again.stderr
    assert (
        "ERROR   mailbridge.outbound.send: outbox: sending paused: mailbox helpdesk: token refresh"
    ) in again.stderr
    assert "from support: created ticket #1001" in again.stderr  # the other mailbox was read
    # Its acknowledgement waits, no attempt counted: SMTP shares the sign-in to renew.
    assert "outbox 2" not in again.stderr and "sent 0, deferred 1" in again.stderr
    assert len(sink.received) == 1
