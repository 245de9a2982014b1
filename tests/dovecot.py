"""A private Dovecot for the interop suite: its own config, users and maildirs, on a free
loopback port. Needs Debian's dovecot-imapd; without it the tests skip (under CI, fail).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.required import unavailable

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DovecotServer:
    """Same surface as EmbeddedImapServer: host, port, username, password, append, messages."""

    host = "127.0.0.1"

    def __init__(self, username: str = "support", password: str = "secret") -> None:
        self.username, self.password = username, password
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mailbridge-dovecot-"))
        self.config = self.root / "dovecot.conf"

    def start(self) -> DovecotServer:
        account = pwd.getpwnam("dovecot")
        self.root.chmod(0o755)
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(exist_ok=True)
        os.chown(self.root / "mail", account.pw_uid, account.pw_gid)
        (self.root / "users").write_text(f"{self.username}:{{PLAIN}}{self.password}\n")
        self.config.write_text(CONFIG.format(root=self.root, port=self.port,
                                             uid=account.pw_uid, gid=account.pw_gid))
        # Dovecot forks into the background: no pipes, or run() would wait on its children.
        subprocess.run(["dovecot", "-c", str(self.config)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex((self.host, self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"dovecot did not listen: {self.log()}")

    def stop(self) -> None:
        subprocess.run(["dovecot", "-c", str(self.config), "stop"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @contextmanager
    def client(self) -> Iterator[IMAPClient]:
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        try:
            client.login(self.username, self.password)
            yield client
        finally:
            client.logout()

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
        unavailable("dovecot is not installed (Debian: apt-get install dovecot-imapd)",
                    "the Dovecot interop tests")


@pytest.fixture
def dovecot_server() -> Iterator[DovecotServer]:
    require_dovecot()
    server = DovecotServer().start()
    try:
        yield server
    finally:
        server.stop()
