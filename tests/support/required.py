"""What a test needs from the machine: skipped with a reason locally, required under CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.corpus import CORPUS

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str, what: str) -> None:
    """Skip (locally) or fail (under CI=true) a test whose `what` cannot be had."""
    if IN_CI:
        pytest.fail(f"{reason}; {what} are required under CI")
    pytest.skip(reason)


def shared_corpus(folder: str = "") -> Path:
    """The shared corpus of real-world mail (`../shared/corpus`), or one of its folders;
    a test without it is skipped locally and fails under CI=true."""
    path = CORPUS / folder if folder else CORPUS
    if not path.is_dir():
        unavailable(f"shared corpus not present at {path}", "the shared corpus files")
    return path
