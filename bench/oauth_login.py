"""What OAuth2 costs an IMAP login: connect, log in, SELECT, log out against the private
Dovecot, with a password (the baseline) and with an XOAUTH2 access token, which Dovecot checks
at the local authorization server's introspection endpoint on every login. A third round
refreshes the token before every login, the worst case of a server refusing each token.

    .venv/bin/python bench/oauth_login.py [--n 200]

Prints logins per second for each round and the ratio to the password baseline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailbridge.adapters.imap import ImapMailbox, ImapSettings
from mailbridge.clock import SystemClock
from mailbridge.config import OAuth2Config
from mailbridge.oauth.accounts import _sign_in
from mailbridge.oauth.signin import (
    finish_device_login,
    start_device_login,
    store_sign_in,
)
from mailbridge.oauth.tokens import TokenProvider, TokenStore
from tests.support.dovecot import DovecotServer
from tests.support.oauth_server import OAuthServer

USER = "support@example.test"


def rate(n: int, login: Callable[[], None]) -> float:
    login()  # warm: the first login starts Dovecot's auth and login processes
    started = time.perf_counter()
    for _ in range(n):
        login()
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="logins per round")
    args = parser.parse_args()
    with OAuthServer() as server, tempfile.TemporaryDirectory() as state:
        dovecot = DovecotServer(oauth=server).start()
        try:
            sign_in = _sign_in(
                "support",
                USER,
                OAuth2Config.model_validate(
                    {
                        "provider": "generic",
                        "client_id": server.client_id,
                        "token_url": server.token_url,
                        "scopes": ["mail"],
                        "device_authorization_url": server.device_authorization_url,
                    }
                ),
                {"imap"},
            )
            code = start_device_login(sign_in)
            record = finish_device_login(
                sign_in, code, SystemClock(), sleep=lambda _: server.approve(code.user_code)
            )
            store = TokenStore(Path(state))
            store_sign_in(sign_in, record, store)
            provider = TokenProvider(sign_in, store, SystemClock())
            base = ImapSettings(
                host=dovecot.host,
                port=dovecot.port,
                security="none",
                username=USER,
                password=dovecot.password,
            )
            oauth = ImapSettings(
                host=dovecot.host,
                port=dovecot.port,
                security="none",
                username=USER,
                password="",
                oauth=provider,
            )

            def login(settings: ImapSettings) -> Callable[[], None]:
                def once() -> None:
                    with ImapMailbox(settings):
                        pass

                return once

            def refreshed() -> None:
                provider.invalidate(provider.access_token())
                login(oauth)()

            password = rate(args.n, login(base))
            bearer = rate(args.n, login(oauth))
            refreshing = rate(args.n, refreshed)
        finally:
            dovecot.stop()
    print(f"{'IMAP login round (connect, log in, SELECT, log out)':<58} logins/s  ratio")
    print(f"{'password (baseline)':<58} {password:8.1f}  1.00")
    print(f"{'XOAUTH2, token introspected by Dovecot':<58} {bearer:8.1f}  {bearer / password:.2f}")
    print(
        f"{'XOAUTH2, token refreshed before every login':<58} {refreshing:8.1f}  "
        f"{refreshing / password:.2f}"
    )


if __name__ == "__main__":
    main()
