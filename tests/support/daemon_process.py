"""`mailbridge run` as systemd runs it, in a process of its own: the configuration it reads
(its IMAP password from MB_SERVICE_IMAP_PASSWORD), the process with its log and its sd_notify
datagrams, the `start` fixture that stops every daemon a test started, and bounded waits on
what the process does."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from tests.support.builders import write_config_file

IMAP_SECRET = "imap-Secret-4-service-test"
SMTP_SECRET = "smtp-Secret-4-service-test"
WAIT = 30.0  # the longest any single expectation may take the daemon


@pytest.fixture
def imap_server() -> Iterator[EmbeddedImapServer]:
    """The embedded IMAP server with the password these configurations give the daemon; a
    test module imports it explicitly, in place of the one in tests/conftest.py."""
    with EmbeddedImapServer(password=IMAP_SECRET) as server:
        yield server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(
    tmp_path: Path,
    imap: EmbeddedImapServer,
    smtp: SmtpSink,
    db_url: str,
    *,
    listen: int | None = None,
    templates: Path | None = None,
    smtp_login: bool = False,
    extra_mailbox: str = "",
    tickets: str = "",
) -> Path:
    login = ""
    if smtp_login:
        (tmp_path / "smtp.secret").write_text(SMTP_SECRET + "\n", encoding="utf-8")
        login = 'username = "mailer"\npassword_file = "smtp.secret"\n'
    return write_config_file(
        tmp_path,
        imap,
        smtp,
        db_url,
        password_env="MB_SERVICE_IMAP_PASSWORD",
        templates=templates,
        listen=listen,
        smtp_extra=login,
        extra_mailbox=extra_mailbox,
        tickets=tickets,
    )


def eventually(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll `check` until it returns something true; the daemon is a real process."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Daemon:
    """`mailbridge run` in a subprocess, its stderr collected line by line and its sd_notify
    datagrams read from a socket bound here."""

    def __init__(
        self,
        tmp_path: Path,
        config: Path,
        *args: str,
        watchdog_usec: int | None = None,
        env: dict[str, str] | None = None,
        umask: int = -1,
    ) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(tmp_path / "notify.sock"))
        self.socket.settimeout(0.2)
        self.notices: list[str] = []
        self.lines: list[str] = []
        environment = {
            **os.environ,
            "MB_SERVICE_IMAP_PASSWORD": IMAP_SECRET,
            "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
            **(env or {}),
        }
        for name in ("WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
            environment.pop(name, None)
        if watchdog_usec:
            environment["WATCHDOG_USEC"] = str(watchdog_usec)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mailbridge", "--config", str(config), *args, "run"],
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
            umask=umask,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def wait_for_log(self, text: str, timeout: float = WAIT) -> None:
        eventually(
            lambda: text in self.log or self.process.poll() is not None,
            f"log line {text!r}",
            timeout,
        )
        assert text in self.log, f"the daemon exited without logging {text!r}:\n{self.log}"

    def wait_for_notice(self, prefix: str, timeout: float = WAIT, after: int = 0) -> str:
        """The first datagram (at index >= after) with a line starting with prefix."""
        deadline = time.monotonic() + timeout
        while True:
            for notice in self.notices[after:]:
                if any(line.startswith(prefix) for line in notice.split("\n")):
                    return notice
            try:
                self.notices.append(self.socket.recv(4096).decode())
            except TimeoutError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise AssertionError(
                        f"no {prefix} notice; got {self.notices}\n{self.log}"
                    ) from None

    def stop(self, timeout: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(10)
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.socket.close()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def starter(config: Path, *args: str, **options: Any) -> Daemon:
        started.append(Daemon(tmp_path, config, *args, **options))
        return started[-1]

    yield starter
    for daemon in started:
        daemon.close()


def http_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    status, body = http_get(port, "/healthz")
    return status, json.loads(body)


def metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = http_get(port, "/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def mailbridge(config: Path, *args: str, umask: int = -1) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MB_SERVICE_IMAP_PASSWORD": IMAP_SECRET}
    env.pop("NOTIFY_SOCKET", None)
    return subprocess.run(
        [sys.executable, "-m", "mailbridge", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        umask=umask,
    )
