"""Sizes for people, on plain values."""

from __future__ import annotations

import pytest

from mailbridge.core.humanize import format_size

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 KB"),
        (48_300, "48 KB"),
        (2_140_000, "2.1 MB"),
        (999_999_999, "1000 MB"),
        (1_300_000_000, "1.3 GB"),
        (25_000_000_000_000, "25000 GB"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text
