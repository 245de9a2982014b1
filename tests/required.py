"""What a test needs from the machine: skipped with a reason locally, required under CI."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str, what: str) -> None:
    """Skip (locally) or fail (under CI=true) a test whose `what` cannot be had."""
    if IN_CI:
        pytest.fail(f"{reason}; {what} are required under CI")
    pytest.skip(reason)
