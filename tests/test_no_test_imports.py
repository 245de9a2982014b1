"""No module imports from a test module: what tests share lives in tests/support (or a
suite's own helper modules, such as tests/hostile/rawmail.py), where its users find it and
where moving a test cannot break another."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
TEST_MODULE = re.compile(r"(^|\.)test_\w*$")


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for each import in the file, and in any Python source it holds as a
    string (a script a test runs in a process of its own)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for found in re.finditer(r"^\s*from\s+(tests\.[\w.]+)\s+import", node.value, re.M):
                yield node.lineno, found.group(1)


def test_nothing_imports_a_test_module() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {module}"
        for folder in ("tests", "bench")
        for path in sorted((REPO / folder).rglob("*.py"))
        for line, module in imported(path)
        if module.startswith("tests.") and TEST_MODULE.search(module)
    ]
    assert offenders == []
