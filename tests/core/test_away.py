"""core.away.return_date: numeric day-first dates, with the words that may stand before."""

from __future__ import annotations

from datetime import date

import pytest

from mailbridge.core.away import return_date

TODAY = date(2026, 11, 23)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12/01", date(2027, 1, 12)),  # past this year: next year's
        ("until 12/01", date(2027, 1, 12)),
        ("30/11", date(2026, 11, 30)),
        ("23/11", TODAY),
        ("fino al 12.01.2027", date(2027, 1, 12)),
        ("bis 2027-01-12", date(2027, 1, 12)),
        ("jusqu'au 12/01/27", date(2027, 1, 12)),
        ("Until   5/2", date(2027, 2, 5)),
    ],
)
def test_day_first_forms(text: str, expected: date) -> None:
    assert return_date(text, TODAY) == expected


@pytest.mark.parametrize("text", ["", "tomorrow", "31/02", "12/13", "until", "1" * 10_000])
def test_what_is_no_date(text: str) -> None:
    assert return_date(text, TODAY) is None
