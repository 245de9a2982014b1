"""What a relayed staff answer and a staff notification carry along, on plain values."""

from __future__ import annotations

import pytest

from mailbridge.core.humanize import format_size
from mailbridge.core.message import Attachment
from mailbridge.core.relay import (
    INLINE_RELAY_MINIMUM,
    NOTIFIED_ATTACHMENTS,
    first_name,
    notified_attachments,
    relayed_attachments,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("display_name", "expected"),
    [
        ("Alice Bianchi", "Alice"),
        ("Bianchi, Alice", "Alice"),
        ("  d'Amico Luca ", "d'Amico"),
        ("alice@example.com", ""),
        ("", ""),
        ("42", ""),
    ],
)
def test_first_name_is_a_word_of_the_display_name_never_an_address(
    display_name: str, expected: str
) -> None:
    assert first_name(display_name) == expected


def test_a_relayed_answer_drops_skipped_parts_unpacked_parts_and_small_inline_logos() -> None:
    report = Attachment("report.pdf", "application/pdf", 10, False)
    photo = Attachment("photo.jpg", "image/jpeg", INLINE_RELAY_MINIMUM, True)
    logo = Attachment("logo.png", "image/png", INLINE_RELAY_MINIMUM - 1, True)
    huge = Attachment("huge.zip", "application/zip", 10**9, False, skipped_reason="too large")
    inner = Attachment("inner.txt", "text/plain", 5, False, container="winmail.dat")
    assert relayed_attachments([report, photo, logo, huge, inner]) == (report, photo)


def test_a_notification_carries_what_fits_the_budget_and_lists_everything() -> None:
    first = Attachment("a.pdf", "application/pdf", 600, False)
    too_big = Attachment("b.pdf", "application/pdf", 500, False)
    small = Attachment("c.txt", "text/plain", 400, False)
    skipped = Attachment("d.zip", "application/zip", 1, False, skipped_reason="too large")
    carried, listing = notified_attachments([first, too_big, small, skipped], 1000)
    assert carried == (first, small)
    assert listing == [
        {"filename": name, "size": format_size(size), "attached": attached}
        for name, size, attached in [
            ("a.pdf", 600, True),
            ("b.pdf", 500, False),
            ("c.txt", 400, True),
            ("d.zip", 1, False),
        ]
    ]


def test_a_notification_carries_at_most_so_many_attachments() -> None:
    many = [Attachment(f"{n}.txt", "text/plain", 1, False) for n in range(NOTIFIED_ATTACHMENTS + 5)]
    carried, listing = notified_attachments(many, 10**9)
    assert len(carried) == NOTIFIED_ATTACHMENTS
    assert len(listing) == len(many)
