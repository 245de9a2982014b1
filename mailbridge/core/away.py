"""The return date a staff member gives with `#away until 12/01`: numeric, day first.

Pure: today is an argument. A date without a year is the next such day from today on, so
in December `#away until 12/01` means January of next year.
"""

from __future__ import annotations

import re
from datetime import date

# The words that may stand before the date; longest first, so "bis zum" wins over "bis".
_PREFIXES = ("until", "till", "fino al", "fino a", "bis zum", "bis", "jusqu'au", "jusqu’au")
_DAY_FIRST = re.compile(r"(\d{1,2})[/.-](\d{1,2})(?:[/.-](\d{2}|\d{4}))?")
_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
MAX_TEXT = 64  # characters: anything longer is no date we read


def return_date(text: str, today: date) -> date | None:
    """`until 12/01`, `fino al 12.01.2027`, `bis 2027-01-12`, `12/01/27` -> the date; None
    for anything else, or a day that does not exist."""
    value = " ".join(text.lower().split())[: MAX_TEXT + 1]
    if len(value) > MAX_TEXT:
        return None
    for prefix in sorted(_PREFIXES, key=len, reverse=True):
        if value.startswith(prefix + " "):
            value = value[len(prefix) + 1 :]
            break
    if iso := _ISO.fullmatch(value):
        return _valid(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
    found = _DAY_FIRST.fullmatch(value)
    if found is None:
        return None
    day, month, year = int(found.group(1)), int(found.group(2)), found.group(3)
    if year is not None:
        return _valid(int(year) + (2000 if len(year) == 2 else 0), month, day)
    this_year = _valid(today.year, month, day)
    if this_year is None or this_year >= today:
        return this_year
    return _valid(today.year + 1, month, day)


def _valid(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None
