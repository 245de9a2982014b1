"""The systemd notification protocol (sd_notify): datagrams of KEY=VALUE lines to the
socket named by $NOTIFY_SOCKET, a filesystem path or, with a leading '@', an abstract one.

Without $NOTIFY_SOCKET every call does nothing, so the daemon runs the same outside systemd.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from datetime import timedelta

__all__ = ["Notifier", "watchdog_interval"]

log = logging.getLogger(__name__)


class Notifier:
    """Sends state changes to the service manager; never raises (a lost notice is logged)."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._socket: socket.socket | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send one datagram of "KEY=VALUE" lines; True when it was handed to the socket."""
        if self.address is None or not lines:
            return False
        if any("\n" in line for line in lines):
            raise ValueError("a notification line cannot contain a newline")
        target = self.address
        if target.startswith("@"):
            target = "\0" + target[1:]  # Linux abstract namespace
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.sendto("\n".join(lines).encode("utf-8"), target)
        except OSError as exc:
            log.warning("cannot notify the service manager at %s: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *_status(status))

    def reloading(self, status: str | None = None) -> bool:
        # systemd 253 and later want the monotonic time with RELOADING=1.
        return self.send(
            "RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}", *_status(status)
        )

    def stopping(self, status: str | None = None) -> bool:
        return self.send("STOPPING=1", *_status(status))

    def status(self, text: str) -> bool:
        return self.send(*_status(text))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()


def _status(text: str | None) -> list[str]:
    return [] if text is None else ["STATUS=" + " ".join(text.split())]


def watchdog_interval(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> timedelta | None:
    """How long systemd waits for a WATCHDOG=1 ($WATCHDOG_USEC), when it is meant for this
    process ($WATCHDOG_PID, when set, names it); None when no watchdog is armed."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    return timedelta(microseconds=int(usec))
