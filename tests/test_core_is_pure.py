"""The core stays free of IO: no network, database, process, OS or clock access."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

CORE = Path(__file__).resolve().parents[1] / "mailbridge" / "core"
FORBIDDEN_MODULES = frozenset({
    "socket", "imaplib", "imapclient", "smtplib", "aiosmtplib", "sqlalchemy", "asyncio",
    "os", "subprocess", "time",
})  # fmt: skip
FORBIDDEN_CALLS = frozenset({"now", "utcnow"})


def violations(source: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            names = []
        found += [f"imports {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in FORBIDDEN_CALLS
        ):
            found.append(f"calls .{node.func.attr}() on line {node.lineno}")
    return found


def core_modules() -> list[Path]:
    return sorted(CORE.glob("*.py"))


def test_core_has_modules() -> None:
    assert any(p.name == "parse.py" for p in core_modules())


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: p.name)
def test_core_module_is_pure(path: Path) -> None:
    assert violations(path.read_text()) == []


@pytest.mark.parametrize(
    "source",
    [
        "import os",
        "import os.path",
        "from time import monotonic",
        "from asyncio import sleep",
        "import sqlalchemy.orm",
        "from datetime import datetime\nx = datetime.now()",
        "import datetime\nx = datetime.datetime.utcnow()",
    ],
)
def test_checker_catches(source: str) -> None:
    assert violations(source) != []


def test_checker_allows_pure_code() -> None:
    assert violations("import re\nfrom datetime import datetime, UTC\nx = re.compile('a')") == []
