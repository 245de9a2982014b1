"""OAuth2 sign-ins against tests/support/oauth_server.py: a generic provider's sign-in, the
device flow consented to by the test, a mailbox that signs in that way (HELPDESK), and
`mailbridge` commands in a process whose user code the test approves or denies."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from mailbridge.clock import FrozenClock
from mailbridge.config import OAuth2Config
from mailbridge.oauth.accounts import SignIn, _sign_in
from mailbridge.oauth.signin import finish_device_login, start_device_login, store_sign_in
from mailbridge.oauth.tokens import TokenProvider, TokenStore
from tests.support.daemon_process import IMAP_SECRET
from tests.support.oauth_server import OAuthServer

USER = "support@example.test"


def generic(server: OAuthServer, account: str = "support", **changes: object) -> SignIn:
    values: dict[str, object] = {
        "provider": "generic",
        "client_id": server.client_id,
        "token_url": server.token_url,
        "device_authorization_url": server.device_authorization_url,
        "scopes": ("mail",),
    }
    values.update(changes)
    return _sign_in(account, USER, OAuth2Config.model_validate(values), {"imap"})


def signed_in(
    server: OAuthServer, sign_in: SignIn, store: TokenStore, clock: FrozenClock
) -> TokenProvider:
    """The device flow, consented to by the test, kept in `store`; a provider for it."""
    code = start_device_login(sign_in)
    record = finish_device_login(
        sign_in, code, clock, sleep=lambda _: server.approve(code.user_code)
    )
    store_sign_in(sign_in, record, store)
    return TokenProvider(sign_in, store, clock)


OAUTH_SECRET = "client-Secret-4-oauth-test"
HELPDESK = """
[[mailbox]]
name = "helpdesk"
address = "{user}"
host = "{host}"
port = {port}
security = "none"
username = "{user}"
poll_interval = "1s"
auth = "oauth2"

[mailbox.oauth2]
provider = "generic"
client_id = "{client_id}"
client_secret_env = "MB_OAUTH_SECRET"
token_url = "{token_url}"
device_authorization_url = "{device_url}"
scopes = ["mail"]
"""


def cli(
    config: Path, *args: str, consent: Callable[[str], None] | None = None
) -> subprocess.CompletedProcess[str]:
    """`mailbridge …` in a subprocess; `consent` gets the user code it prints (to approve or
    deny it at the OAuth server, as the person signing in would)."""
    env = {"MB_SERVICE_IMAP_PASSWORD": IMAP_SECRET, "MB_OAUTH_SECRET": OAUTH_SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "mailbridge", "--config", str(config), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**_environ(), **env},
    )
    assert process.stdout is not None
    lines = []
    if consent is not None:
        for line in process.stdout:
            lines.append(line)
            found = re.search(r"enter the code (\S+)", line)
            if found:
                consent(found.group(1))  # the server refuses a code it did not issue
                break
    out, err = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, "".join(lines) + out, err)


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
