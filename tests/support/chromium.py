"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol on a pipe, with
the standard library only: load a file, read what the page laid out, list every request it
made. Without Chromium a test is skipped (under CI, failed: .ci/run installs it).

The pipe (`--remote-debugging-pipe`) carries JSON messages ended by a NUL byte: commands
on the browser's fd 3, answers and events on its fd 4.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tests.support.required import unavailable

BINARY = "/usr/bin/chromium"
TIMEOUT = 30.0
# Nothing may reach the network from a test: names resolve nowhere, and anything the page
# asks for goes to a proxy port nothing listens on. The requests are still seen.
FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests may run as root, where the sandbox refuses to start
    "--disable-gpu",
    "--remote-debugging-pipe",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-extensions",
    "--disable-sync",
    "--mute-audio",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
)


class DevToolsError(RuntimeError):
    pass


class Chromium:
    """One browser; `open` loads a page in a new tab of the given size."""

    def __init__(self, process: subprocess.Popen[bytes], commands: int, answers: int) -> None:
        self.process = process
        self._commands, self._answers = commands, answers
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> Any:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise DevToolsError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, method: str, session: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method and event.get("sessionId") == session:
                return event
        while True:
            event = self._read()
            self.events.append(event)
            if event.get("method") == method and event.get("sessionId") == session:
                return event

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._answers], [], [], max(left, 0))
            if not ready:
                raise DevToolsError("Chromium did not answer in time")
            chunk = os.read(self._answers, 1 << 16)
            if not chunk:
                raise DevToolsError("Chromium closed the pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return dict(json.loads(message))

    def open(self, path: Path, width: int = 800, height: int = 1000) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page.enable", "Network.enable", "Runtime.enable"):
            self.send(domain, session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        url = path.resolve().as_uri()
        self.send("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired", session)
        return Page(self, session, target, url)


class Page:
    def __init__(self, browser: Chromium, session: str, target: str, url: str) -> None:
        self.browser, self.session, self.target, self.url = browser, session, target, url

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression run by the test in the page (the page
        itself has none)."""
        result = self.browser.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, self.session
        )
        if "exceptionDetails" in result:
            raise DevToolsError(str(result["exceptionDetails"]))
        return result["result"].get("value")

    def requests(self) -> list[str]:
        """The URL of every request the page made, its own document's included."""
        return [
            event["params"]["request"]["url"]
            for event in self.browser.events
            if event.get("method") == "Network.requestWillBeSent"
            and event.get("sessionId") == self.session
        ]

    def screenshot(self) -> bytes:
        """The whole page as a PNG."""
        result = self.browser.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True},
            self.session,
        )
        return base64.b64decode(result["data"])

    def close(self) -> None:
        self.browser.send("Target.closeTarget", {"targetId": self.target})


# Put the pipes where the protocol expects them, fds 3 and 4, then become Chromium.
_ON_3_AND_4 = """
import os, sys
ends = [int(sys.argv[1]), int(sys.argv[2])]
os.dup2(ends[0], 3)
os.dup2(ends[1], 4)
for end in ends:
    os.close(end)
os.execv(sys.argv[3], sys.argv[3:])
"""


def _above_four(fd: int) -> int:
    """The same pipe end on a number the shell's redirections to 3 and 4 leave alone."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


@contextmanager
def chromium() -> Iterator[Chromium]:
    """A headless Chromium for the block; skipped (locally) when it is not installed."""
    binary = BINARY if os.access(BINARY, os.X_OK) else shutil.which("chromium")
    if binary is None:
        unavailable("Chromium is not installed (Debian package chromium)", "the tests in Chromium")
    commands_in, commands = map(_above_four, os.pipe())
    answers, answers_out = map(_above_four, os.pipe())
    with tempfile.TemporaryDirectory(prefix="mailbridge-chromium-") as profile:
        process = subprocess.Popen(
            [sys.executable, "-c", _ON_3_AND_4, str(commands_in), str(answers_out), str(binary)]
            + [*FLAGS, f"--user-data-dir={profile}"],
            pass_fds=(commands_in, answers_out),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(commands_in)
        os.close(answers_out)
        browser = Chromium(process, commands, answers)
        try:
            yield browser
        finally:
            with suppress(DevToolsError, OSError):  # it may be gone already
                browser.send("Browser.close")
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            os.close(commands)
            os.close(answers)
