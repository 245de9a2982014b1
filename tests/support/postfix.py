"""A private Postfix for the LMTP interop test: its own configuration, queue and log under
a temporary directory (`postfix -c DIR`), on a free loopback port, so it neither needs nor
disturbs a system Postfix. Needs Debian's postfix and root (its master process starts as
root and drops to the postfix user); without them the test skips (under CI, fails)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.lmtp import free_port
from tests.support.required import unavailable

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mta.shop.example
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relay_domains = {domain}
# The support domain goes to mailbridge over LMTP, everything else to the sink.
transport_maps = inline:{{{domain}=lmtp:inet:127.0.0.1:{lmtp_port}}}
relayhost = [127.0.0.1]:{relay_port}
smtputf8_enable = no
smtp_tls_security_level = none
lmtp_tls_security_level = none
# A delivery that failed waits for `postqueue -f`, never for a timer, in the tests.
minimal_backoff_time = 1h
maximal_backoff_time = 1h
queue_run_delay = 1h
"""

# One line per service: chroot off (the queue is in a temporary directory).
MASTER_CF = """\
127.0.0.1:{smtp_port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


@dataclass(frozen=True)
class Postfix:
    root: Path
    smtp_port: int  # where mail is submitted

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    def _run(self, *args: str) -> str:
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=30, check=False, env=_env()
        )
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed: {done.stderr or done.stdout}")
        return done.stdout

    def flush(self) -> None:
        """Deliver what waits in the queue now (`postqueue -f`), not at the retry timer."""
        self._run("postqueue", "-c", str(self.config_dir), "-f")

    def queued(self) -> int:
        """Messages in the queue (delivered ones are gone)."""
        listing = self._run("postqueue", "-c", str(self.config_dir), "-j")
        return len([line for line in listing.splitlines() if line.strip()])

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""


def _env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}


@contextmanager
def private_postfix(*, domain: str, lmtp_port: int, relay_port: int) -> Iterator[Postfix]:
    postfix = shutil.which("postfix", path="/usr/sbin:/usr/bin")
    if postfix is None:
        unavailable("postfix is not installed (apt-get install postfix)", "Postfix tests")
    if os.geteuid() != 0:
        unavailable("a private Postfix instance needs root to start", "Postfix tests")
    # Not under pytest's temporary directory, which only root may enter: the postfix user
    # must reach its own queue and lock files.
    root = Path(tempfile.mkdtemp(prefix="mailbridge-postfix-"))
    root.chmod(0o711)
    (root / "etc").mkdir()
    smtp_port = free_port()
    (root / "etc" / "main.cf").write_text(
        MAIN_CF.format(root=root, domain=domain, lmtp_port=lmtp_port, relay_port=relay_port)
    )
    (root / "etc" / "master.cf").write_text(MASTER_CF.format(smtp_port=smtp_port))
    (root / "queue").mkdir()
    (root / "data").mkdir()
    shutil.chown(root / "data", "postfix")
    instance = Postfix(root, smtp_port)
    instance._run(str(postfix), "-c", str(root / "etc"), "set-permissions")
    instance._run(str(postfix), "-c", str(root / "etc"), "start")
    try:
        _wait_for_port(smtp_port)
        yield instance
    finally:
        subprocess.run(
            [str(postfix), "-c", str(root / "etc"), "stop"],
            capture_output=True,
            timeout=30,
            check=False,
            env=_env(),
        )
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"Postfix did not listen on port {port}")
