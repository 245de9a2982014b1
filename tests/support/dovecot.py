"""A private Dovecot for the interop suite: its own config, users and maildirs, on a free
loopback port. Needs Debian's dovecot-imapd; without it the tests skip (under CI, fail).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.support.required import unavailable

if TYPE_CHECKING:  # a plugin of tests/conftest.py: pytest must import it first
    from tests.support.oauth_server import OAuthServer

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
mail_location = maildir:{root}/mail/%u
first_valid_uid = 1
{auth}userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""

PASSWORD_AUTH = """\
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
"""

# XOAUTH2/OAUTHBEARER tokens are checked by the OAuth server's introspection endpoint on
# every login: the auth cache is off, so a token expired there is refused at once. The
# password user stays (PLAIN/LOGIN) for append() and messages(). Refused tokens are part
# of the tests, so no failure delay, and no per-IP penalty either: after each failure it
# holds back the next login from 127.0.0.1, even a good one, by 2, 4, 8, up to 15 s. The
# auth process skips the penalty when it cannot reach anvil's penalty socket.
OAUTH_AUTH = """\
auth_mechanisms = plain login xoauth2 oauthbearer
auth_cache_size = 0
auth_failure_delay = 0
auth_verbose = yes
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext
}}
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {root}/users
}}
"""

# The SASL username must equal the introspection answer's `username` (lower-cased by the
# default username_format = %Lu); `active` must be JSON true.
OAUTH2_CONFIG = """\
introspection_mode = {mode}
introspection_url = {url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
"""

INTROSPECTION_MODES = ("post", "get", "auth")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DovecotServer:
    """Same surface as EmbeddedImapServer: host, port, username, password, append, messages.

    With ``oauth``, Dovecot also offers XOAUTH2 and OAUTHBEARER, checked against that
    server's introspection endpoint (``introspection_mode``: "post", "get" or "auth"); the
    username then defaults to the OAuth server's first user, who can also log in with
    ``password`` over PLAIN/LOGIN.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        username: str | None = None,
        password: str = "secret",
        *,
        oauth: OAuthServer | None = None,
        introspection_mode: str = "post",
    ) -> None:
        if introspection_mode not in INTROSPECTION_MODES:
            raise ValueError(f"introspection_mode must be one of {INTROSPECTION_MODES}")
        default_user = oauth.users[0] if oauth is not None else "support"
        self.username, self.password = username or default_user, password
        self.oauth, self.introspection_mode = oauth, introspection_mode
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mailbridge-dovecot-"))
        self.config = self.root / "dovecot.conf"

    def __enter__(self) -> DovecotServer:
        require_dovecot()
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> DovecotServer:
        account = pwd.getpwnam("dovecot")
        self.root.chmod(0o755)
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(exist_ok=True)
        os.chown(self.root / "mail", account.pw_uid, account.pw_gid)
        (self.root / "users").write_text(f"{self.username}:{{PLAIN}}{self.password}\n")
        auth = PASSWORD_AUTH if self.oauth is None else OAUTH_AUTH
        if self.oauth is not None:
            self._write_oauth2_config(self.oauth)
        self.config.write_text(
            CONFIG.format(
                root=self.root,
                port=self.port,
                uid=account.pw_uid,
                gid=account.pw_gid,
                auth=auth.format(root=self.root),
            )
        )
        # Dovecot reads these as its own user: readable whatever umask this process has
        # (the command line's main() sets 027 for the whole process when a test calls it).
        for path in self.root.iterdir():
            if path.is_file():
                path.chmod(0o644)
        # Dovecot forks into the background: no pipes, or run() would wait on its children.
        subprocess.run(
            ["dovecot", "-c", str(self.config)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex((self.host, self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"dovecot did not listen: {self.log()}")

    def _write_oauth2_config(self, oauth: OAuthServer) -> None:
        url = oauth.introspection_url
        if self.introspection_mode == "get":
            url += "?token="  # Dovecot appends the token to the URL
        (self.root / "oauth2.conf.ext").write_text(
            OAUTH2_CONFIG.format(mode=self.introspection_mode, url=url)
        )

    def stop(self) -> None:
        """Kill the master process: its children see it gone and exit at once, and its
        listening socket closes with it. (`dovecot stop` waits 3 s or more for the master
        to wind down, about a minute over the suite.) The maildirs go with the root."""
        try:
            os.kill(int((self.root / "run" / "master.pid").read_text()), signal.SIGKILL)
        except (OSError, ValueError):  # never started, or already gone
            subprocess.run(
                ["dovecot", "-c", str(self.config), "stop"],
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @contextmanager
    def client(self) -> Iterator[IMAPClient]:
        client = self._logged_in()
        try:
            yield client
        finally:
            client.logout()

    def _logged_in(self) -> IMAPClient:
        """A client logged in as the password user; a refusal carries Dovecot's log, which
        says why (an auth process that cannot read its files answers only "[UNAVAILABLE]
        Temporary authentication failure")."""
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        try:
            client.login(self.username, self.password)
        except LoginError as exc:
            client.shutdown()
            raise LoginError(f"{exc}; dovecot.log:\n{self.log()[-4000:]}") from exc
        return client

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        with self.client() as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw)

    def messages(self, folder: str = "INBOX") -> list[bytes]:
        with self.client() as client:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            fetched = client.fetch(uids, [b"BODY.PEEK[]"]) if uids else {}
            return [fetched[uid][b"BODY[]"] for uid in sorted(fetched)]


def require_dovecot() -> None:
    if shutil.which("dovecot") is None:
        unavailable(
            "dovecot is not installed (Debian: apt-get install dovecot-imapd)",
            "the Dovecot interop tests",
        )


@pytest.fixture
def dovecot_server() -> Iterator[DovecotServer]:
    with DovecotServer() as server:
        yield server
