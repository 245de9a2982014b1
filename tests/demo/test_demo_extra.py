"""The demo's servers are an optional extra: a production install leaves pymap and aiosmtpd
out (aiosmtpd comes back only with the lmtp extra, for the [lmtp] listener), and
`mailbridge demo` without them says how to get them."""

from __future__ import annotations

import importlib.metadata
import json
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from mailbridge.cli.main import main

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DEMO_ONLY = ("pymap", "aiosmtpd")
# The extras that may bring each: aiosmtpd also serves the [lmtp] listener.
ALLOWED_EXTRAS = {
    "pymap": frozenset({"demo", "dev"}),
    "aiosmtpd": frozenset({"demo", "dev", "lmtp"}),
}


def requires_dist() -> list[str]:
    """The Requires-Dist lines a build of this checkout's pyproject.toml declares, written
    as the installed metadata writes them (`importlib.metadata.requires`)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        lines += [f'{requirement}; extra == "{extra}"' for requirement in requirements]
    return lines


def misplaced(lines: list[str]) -> list[str]:
    """The requirements of a demo-only package that an install without the demo or dev
    extra gets, judged by evaluating each line's marker as pip does."""
    found = []
    for line in lines:
        requirement = Requirement(line)
        name = requirement.name.lower()
        if name not in DEMO_ONLY:
            continue
        marker = requirement.marker
        outside = [
            extra
            for extra in ("", "postgres")
            if marker is None or marker.evaluate({"extra": extra})
        ]
        if outside or not any(marker.evaluate({"extra": extra}) for extra in ALLOWED_EXTRAS[name]):
            found.append(line)
    return found


def test_the_demo_servers_come_only_with_the_demo_extra() -> None:
    lines = requires_dist()
    assert misplaced(lines) == []
    for name in DEMO_ONLY:
        assert any(line.startswith(name) and 'extra == "demo"' in line for line in lines), name


def test_the_dev_extra_brings_the_demo_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "mailbridge[demo]" in project["optional-dependencies"]["dev"]


def test_the_installed_metadata_agrees_when_installed_from_here() -> None:
    dist = importlib.metadata.distribution("mailbridge")
    origin = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    if origin != ROOT.as_uri():
        pytest.skip(f"mailbridge is installed from {origin or 'an index'}, not {ROOT}")
    assert misplaced(dist.requires or []) == [], (
        "stale install: pip install -e '.[dev,demo]' (make does it when pyproject.toml changes)"
    )


@pytest.mark.parametrize(
    "line, bad",
    [
        ("aiosmtpd>=1.4.6", True),
        ('pymap>=0.36; extra == "postgres"', True),
        ('pymap>=0.36; extra == "demo"', False),
        ('aiosmtpd>=1.4.6 ; python_version >= "3.11" and extra == "dev"', False),
        ("aiosmtpd>=1.4.6; extra == 'demo'", False),
        ("pymap>=0.36; extra == 'postgres'", True),
        ("aiosmtplib>=5.1.3", False),
    ],
)
def test_misplaced_tells_an_extra_from_a_plain_dependency(line: str, bad: bool) -> None:
    assert bool(misplaced([line])) is bad


@pytest.mark.parametrize("missing", ["pymap", "aiosmtpd", "proxyprotocol"])
def test_demo_without_the_extra_says_how_to_install_it(
    missing: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for module in [m for m in sys.modules if m.startswith("mailbridge.demo.")]:
        monkeypatch.delitem(sys.modules, module)
    for module in [missing, *(m for m in sys.modules if m.startswith(f"{missing}."))]:
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed

    assert main(["demo"]) == 1

    err = capsys.readouterr().err
    assert "the demo needs pymap and aiosmtpd" in err, err
    assert f"({missing} is missing)" in err, err
    assert "pip install 'mailbridge[demo]'" in err
