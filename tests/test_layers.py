"""Dependencies point one way: a lower layer never imports a higher one.

Layers, lowest first (`mailbridge.` left out): the pure core; the top-level
foundations, which may import each other only in the order listed; db, adapters and
oauth, which are peers and must not import each other; then app, outbound,
tickets, reports, inbound, service, demo, cli and __main__, each above the one before.
A module may import anything in its own package or in a lower layer.

Imports under ``if TYPE_CHECKING:`` count like any other: a type taken from a
higher layer still ties the lower one to it, and a cycle hidden from the
interpreter is still a cycle for the reader.

The demo's servers (pymap, aiosmtpd) are an optional extra: only mailbridge.demo
may import them, and aiosmtpd also the LMTP listener (the `lmtp` extra).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[1] / "mailbridge"

# Each entry is one rank; names in a tuple share a rank.  A shared rank is either
# ordered (the foundations: a name may import the names before it) or peers (may not
# import each other at all).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("errors", "clock", "faults", "durable", "config", "logs", "heap"),
    ("db", "adapters", "oauth"),
    ("app",),
    ("outbound",),
    ("tickets",),
    ("reports",),
    ("inbound",),
    ("service",),
    ("demo",),
    ("cli",),
    ("__main__",),
)
ORDERED = frozenset({("errors", "clock", "faults", "durable", "config", "logs", "heap")})
# The demo extra: pymap (which brings proxyprotocol and pysasl) and aiosmtpd.
DEMO_ONLY = frozenset({"pymap", "aiosmtpd", "proxyprotocol", "pysasl"})


@dataclass(frozen=True)
class Import:
    line: int
    target: str  # absolute dotted module name as written or resolved


def rank(part: str) -> tuple[int, int]:
    """(layer index, position inside an ordered layer or -1 for peers)."""
    for index, names in enumerate(LAYERS):
        if part in names:
            return index, names.index(part) if names in ORDERED else -1
    raise KeyError(part)


def top_part(module: str) -> str | None:
    """The layer name of a mailbridge module (`mailbridge.inbound.fetch` -> `inbound`)."""
    parts = module.split(".")
    if parts[0] != "mailbridge":
        return None
    return parts[1] if len(parts) > 1 else ""


def imports(source: str, module: str, is_package: bool) -> Iterator[Import]:
    """Every import in the module, at any depth, with relative ones made absolute."""
    here = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here[: len(here) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from mailbridge import app` imports the submodule mailbridge.app;
            # `from mailbridge import __version__` only the package itself.
            if base == "mailbridge":
                for alias in node.names:
                    known = any(alias.name in layer for layer in LAYERS)
                    yield Import(node.lineno, f"mailbridge.{alias.name}" if known else base)
            else:
                yield Import(node.lineno, base)


def allowed(importer: str, imported: str) -> bool:
    """May a module in layer `importer` import one in layer `imported`?"""
    if importer == imported or imported == "":
        return True
    if importer == "":  # mailbridge/__init__.py stays empty of imports
        return False
    (mine, my_pos), (theirs, their_pos) = rank(importer), rank(imported)
    if mine != theirs:
        return theirs < mine
    return my_pos >= 0 and their_pos < my_pos


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    found: list[str] = []
    importer = top_part(module)
    assert importer is not None
    for imp in imports(source, module, is_package):
        root = imp.target.split(".")[0]
        if root in DEMO_ONLY and importer != "demo" and not lmtp_extra(module, root):
            found.append(f"{module}:{imp.line} imports {imp.target} (only the demo may)")
        imported = top_part(imp.target)
        if imported is not None and not allowed(importer, imported):
            found.append(f"{module}:{imp.line} imports {imp.target} (a higher layer)")
    return found


def lmtp_extra(module: str, root: str) -> bool:
    """The LMTP listener is the one module outside the demo that uses aiosmtpd (the
    `lmtp` extra); the daemon imports it only when [lmtp] is configured."""
    return module == "mailbridge.service.lmtp_server" and root == "aiosmtpd"


def package_modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found.append((".".join(parts).removesuffix(".__init__"), path))
    return found


def test_every_top_level_module_has_a_layer() -> None:
    known = {name for layer in LAYERS for name in layer}
    tops = {top_part(module) for module, _ in package_modules()} - {""}
    assert tops <= known, f"give {sorted(tops - known)} a place in LAYERS"


@pytest.mark.parametrize(
    "module,path", package_modules(), ids=[module for module, _ in package_modules()]
)
def test_module_imports_only_lower_layers(module: str, path: Path) -> None:
    assert violations(path.read_text(), module, path.name == "__init__.py") == []


@pytest.mark.parametrize(
    "module,source",
    [
        ("mailbridge.core.parse", "from mailbridge.errors import ConfigError"),
        ("mailbridge.errors", "from mailbridge import logs"),
        ("mailbridge.db.queries", "import mailbridge.adapters.smtp"),
        ("mailbridge.adapters.imap", "from mailbridge.oauth.tokens import fetch"),
        ("mailbridge.outbound.send", "def f():\n    from ..inbound.bounces import verp\n"),
        ("mailbridge.tickets.escalate", "from mailbridge.service import daemon"),
        ("mailbridge.app", "if TYPE_CHECKING:\n    from mailbridge.outbound import queue\n"),
        ("mailbridge.service.web", "from aiosmtpd.controller import Controller"),
        ("mailbridge.cli.main", "import pymap"),
    ],
)
def test_checker_catches(module: str, source: str) -> None:
    assert violations(source, module) != []


@pytest.mark.parametrize(
    "module,source",
    [
        ("mailbridge.logs", "from mailbridge.errors import ConfigError\nfrom .clock import now"),
        ("mailbridge.inbound.bounces", "from mailbridge.outbound.send import verp"),
        ("mailbridge.inbound.fetch", "from . import leases\nfrom ..core import parse"),
        ("mailbridge.cli.main", "from mailbridge.service import daemon"),
        ("mailbridge.demo.servers", "from aiosmtpd.controller import Controller"),
    ],
)
def test_checker_allows(module: str, source: str) -> None:
    assert violations(source, module) == []
