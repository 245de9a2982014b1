"""The shipped unit file: systemd's own checker accepts it without a single warning, and it
says what the service relies on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailbridge.service.daemon import STOP_GRACE
from tests.support.required import unavailable

pytestmark = pytest.mark.unit

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "mailbridge.service"
INSTALLED = "/opt/mailbridge/.venv/bin/mailbridge"


def settings(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        unavailable("systemd-analyze is missing (Debian package systemd)", "unit file checks")
    assert tool is not None
    return subprocess.run(
        [tool, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify insists that ExecStart's program exists: point it at this installation's.
    here = Path(sys.executable).parent / "mailbridge"
    if not here.exists():
        pytest.skip(f"no mailbridge entry point next to {sys.executable}")
    text = UNIT.read_text(encoding="utf-8")
    assert INSTALLED in text
    unit = tmp_path / "mailbridge.service"
    unit.write_text(text.replace(INSTALLED, str(here)), encoding="utf-8")

    result = verify(unit)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", "systemd-analyze warned about the unit"

    # The check can fail: a unit with a typo is reported.
    broken = tmp_path / "broken.service"
    broken.write_text(unit.read_text().replace("Type=notify", "Type=notifyy"), encoding="utf-8")
    assert "notifyy" in verify(broken).stderr


def test_the_unit_asks_for_notification_a_watchdog_and_a_sandbox() -> None:
    found = settings(UNIT.read_text(encoding="utf-8"))
    expected = {
        "Type": ["notify"],
        "Restart": ["on-failure"],
        "ExecReload": ["/bin/kill -HUP $MAINPID"],
        "User": ["mailbridge"],
        "StateDirectory": ["mailbridge"],
        "ConfigurationDirectory": ["mailbridge"],
        "ProtectSystem": ["strict"],
        "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"],
        "NoNewPrivileges": ["yes"],
        "CapabilityBoundingSet": [""],
        "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
    }
    for key, value in expected.items():
        assert found.get(key) == value, key
    assert found["SystemCallFilter"][0] == "@system-service"
    assert found["WatchdogSec"] == ["30s"]
    # Pollers get STOP_GRACE to finish, then the outbox gets STOP_GRACE for a last pass.
    assert found["TimeoutStopSec"] == ["60s"] and 2 * STOP_GRACE < 60
    assert found["ExecStart"][0].endswith(" run")
