"""`mailbridge run` as a real process that the fault runs can kill -9 and restart, with
its /healthz read over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

# Inherited from a systemd session or a test run, these would change what the child does.
_DROPPED_ENV = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
    "MAILBRIDGE_CRASH_AT",
    "MAILBRIDGE_CONFIG",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def separate_hosts_possible() -> bool:
    """Whether a child can get a host name of its own (a UTS namespace: root, unshare)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--uts", "true"], capture_output=True, check=False, timeout=10
    )
    return probe.returncode == 0


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env.update(extra)
    return env


def mailbridge(
    config: Path, env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """A one-off command (e.g. `db upgrade`), run to completion."""
    return subprocess.run(
        [sys.executable, "-m", "mailbridge", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


class DaemonProcess:
    """One instance: `mailbridge run` in its own process group (so kill -9 also takes the
    parsing process it may have started, as systemd's KillMode=control-group would), its
    output appended to one log file across restarts. With `hostname`, it runs in a UTS
    namespace of its own under that host name, as if on another machine."""

    def __init__(
        self,
        name: str,
        config: Path,
        env: dict[str, str],
        log: Path,
        port: int,
        hostname: str | None = None,
    ) -> None:
        self.name = name
        self.hostname = hostname
        self.config = config
        self.env = env
        self.log = log
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._output: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.starts += 1
        self._output = self._output or open(self.log, "ab")  # noqa: SIM115 - kept open
        self._output.write(f"=== {self.name}: start {self.starts} ===\n".encode())
        self._output.flush()
        command = [sys.executable, "-m", "mailbridge", "--config", str(self.config), "run"]
        if self.hostname is not None:
            # The shell sets the name, then becomes mailbridge: the pid stays the same.
            command = [
                "unshare",
                "--uts",
                "sh",
                "-c",
                'hostname "$0" && exec "$@"',
                self.hostname,
                *command,
            ]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )

    def kill(self) -> None:
        """kill -9 the whole process group, and reap it."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        self._note(f"killed with SIGKILL (exit {process.returncode})")

    def terminate(self, timeout: float = 60) -> int | None:
        """SIGTERM and wait: the exit code, or None when it had to be killed."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        self._reap_group(process.pid)
        self._note(f"stopped with SIGTERM (exit {process.returncode})")
        return process.returncode

    def pause(self, paused: bool) -> None:
        """SIGSTOP (or SIGCONT) the process group: frozen while the harness looks at it."""
        if self.alive and self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def close(self) -> None:
        self.kill()
        if self._output is not None:
            self._output.close()
            self._output = None

    def _reap_group(self, pgid: int) -> None:
        # A parsing process left behind by a leader that ended on its own.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    def _note(self, text: str) -> None:
        if self._output is not None:
            self._output.write(f"=== {self.name}: {text} ===\n".encode())
            self._output.flush()

    # -- /healthz --

    def health(self, timeout: float = 1.0) -> dict[str, Any] | None:
        """The /healthz document, or None when the process does not answer."""
        url = f"http://127.0.0.1:{self.port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                return dict(json.loads(answer.read()))
        except urllib.error.HTTPError as exc:  # 503: unhealthy, with the same document
            return dict(json.loads(exc.read()))
        except (OSError, ValueError):
            return None

    def state(self, component: str) -> str | None:
        document = self.health()
        if document is None:
            return None
        found = document.get("components", {}).get(component)
        return None if found is None else str(found.get("state"))

    def wait_healthy(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive:
            document = self.health()
            if document is not None and document.get("status") == "ok":
                return True
            time.sleep(0.1)
        return False

    def wait_answering(self, timeout: float) -> bool:
        """Until /healthz answers at all (healthy or not): the process is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive:
            if self.health() is not None:
                return True
            time.sleep(0.1)
        return False

    def wait_state(self, component: str, wanted: str, timeout: float) -> bool:
        """Poll until `component` is in state `wanted` (it may be brief: poll fast)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive:
            if self.state(component) == wanted:
                return True
            time.sleep(0.02)
        return False

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
