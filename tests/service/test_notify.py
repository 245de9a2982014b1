"""The sd_notify protocol over a real datagram socket, as systemd reads it."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mailbridge.service.notify import Notifier, watchdog_interval

pytestmark = pytest.mark.unit


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()


def test_each_call_is_one_datagram_of_lines(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    try:
        assert notifier.ready("3 mailboxes idle,\n outbox 0 pending")
        assert notifier.watchdog()
        assert notifier.stopping()
    finally:
        notifier.close()
    assert sock.recv(4096) == b"READY=1\nSTATUS=3 mailboxes idle, outbox 0 pending"
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert sock.recv(4096) == b"STOPPING=1"


def test_reloading_carries_the_monotonic_time(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    notifier = Notifier(path)
    before = time.monotonic_ns() // 1000
    notifier.reloading()
    notifier.close()
    lines = sock.recv(4096).decode().split("\n")
    assert lines[0] == "RELOADING=1"
    key, _, value = lines[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= time.monotonic_ns() // 1000


def test_abstract_namespace_sockets_are_reached_with_a_leading_at() -> None:
    name = f"mailbridge-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    notifier = Notifier(f"@{name}")
    try:
        assert notifier.status("busy")
        assert sock.recv(4096) == b"STATUS=busy"
    finally:
        notifier.close()
        sock.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    assert not notifier.ready()


def test_a_vanished_socket_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(str(tmp_path / "gone.sock"))
    assert not notifier.watchdog()
    notifier.close()
    assert "cannot notify the service manager" in caplog.text


def test_a_line_cannot_smuggle_in_another_assignment(listener: tuple[str, socket.socket]) -> None:
    notifier = Notifier(listener[0])
    with pytest.raises(ValueError, match="newline"):
        notifier.send("STATUS=ok\nREADY=1")
    notifier.close()


def test_watchdog_interval_is_read_for_this_process_only() -> None:
    me = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == timedelta(seconds=30)
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": me}) == timedelta(
        seconds=2
    )
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({}) is None
