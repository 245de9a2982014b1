"""How each FAQ offer ended, on plain values: solved before staff before quiet, the quiet
window counted from the offer, and the count per entry (core/faq_stats.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailbridge.core.faq_stats import Offer, entry_uses, outcome

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
D = timedelta(days=1)
WINDOW = 2 * D


def offer(**moments: datetime | None) -> Offer:
    return Offer(("a.md",), AT, WINDOW, **moments)


@pytest.mark.parametrize(
    ("moments", "now", "ended"),
    [
        ({"solved_at": AT + D, "answered_at": AT + 2 * D}, AT + 9 * D, "solved"),
        ({"answered_at": AT + D / 2, "wrote_at": AT + D}, AT + 9 * D, "staff"),
        ({"answered_at": AT + 5 * D}, AT + 9 * D, "staff"),  # late, but staff still answered
        ({}, AT + WINDOW, "quiet"),
        ({}, AT + WINDOW - timedelta(seconds=1), "open"),  # too early to tell
        ({"wrote_at": AT + D}, AT + 9 * D, "open"),  # wrote again, nobody answered yet
        ({"wrote_at": AT + WINDOW + timedelta(seconds=1)}, AT + 9 * D, "quiet"),
        ({"wrote_at": AT + WINDOW}, AT + 9 * D, "open"),
        # moments before the offer (a late acknowledgement after an answer) are not its
        ({"solved_at": AT - D, "answered_at": AT - D}, AT + 9 * D, "quiet"),
    ],
)
def test_how_an_offer_ended(moments: dict[str, datetime], now: datetime, ended: str) -> None:
    assert outcome(offer(**moments), now) == ended


def test_each_entry_offered_counts_every_offer_and_unoffered_ones_are_listed() -> None:
    offers = [
        Offer(("a.md", "b.md"), AT, WINDOW, solved_at=AT + D),
        Offer(("a.md", "a.md"), AT, WINDOW, answered_at=AT + D),  # once per offer
        Offer(("b.md",), AT, WINDOW),
    ]

    uses = entry_uses(offers, AT + 9 * D, files=["c.md", "a.md"])

    assert [(u.file, u.offered, u.outcomes) for u in uses] == [
        ("a.md", 2, {"solved": 1, "staff": 1, "quiet": 0, "open": 0}),
        ("b.md", 2, {"solved": 1, "staff": 0, "quiet": 1, "open": 0}),
        ("c.md", 0, {"solved": 0, "staff": 0, "quiet": 0, "open": 0}),
    ]
