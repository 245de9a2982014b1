"""What became of the FAQ answers acknowledgements offered (`mailbridge faq stats`). Pure:
offers with the times of what followed them in, a count per entry out.

Each offer ends in one outcome, the first of these that holds:

- solved: the customer wrote that it was solved, and the ticket was resolved without a
  staff answer (inbound/solved.py);
- staff: a staff member still answered the customer (the ticket's first response);
- quiet: neither, and the customer wrote nothing more for the whole quiet window after
  the offer: the answer was probably enough;
- open: anything else: the window has not passed yet, or the customer wrote again and
  nobody has answered so far.

An offer of several entries counts for each of them: which one helped is not known.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Outcome = Literal["solved", "staff", "quiet", "open"]
OUTCOMES: tuple[Outcome, ...] = ("solved", "staff", "quiet", "open")


@dataclass(frozen=True, slots=True)
class Offer:
    """The FAQ answers one acknowledgement offered, and what followed on its ticket."""

    files: tuple[str, ...]
    offered_at: datetime
    quiet_window: timedelta  # how long the customer's silence takes to count
    solved_at: datetime | None = None  # the customer's "solved"
    answered_at: datetime | None = None  # the first staff answer to the customer
    wrote_at: datetime | None = None  # the customer's first mail after the one answered


@dataclass(slots=True)
class EntryUse:
    """How often one entry was offered, and how each offer ended."""

    file: str
    outcomes: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))

    @property
    def offered(self) -> int:
        return sum(self.outcomes.values())


def outcome(offer: Offer, now: datetime) -> Outcome:
    """How the offer ended, as far as can be told at `now` (this module's docstring)."""
    if offer.solved_at is not None and offer.solved_at >= offer.offered_at:
        return "solved"
    if offer.answered_at is not None and offer.answered_at >= offer.offered_at:
        return "staff"
    window_end = offer.offered_at + offer.quiet_window
    wrote_in_window = offer.wrote_at is not None and offer.wrote_at <= window_end
    if now >= window_end and not wrote_in_window:
        return "quiet"
    return "open"


def entry_uses(offers: Iterable[Offer], now: datetime, files: Iterable[str] = ()) -> list[EntryUse]:
    """Each entry's offers by outcome, most offered first (then by name); the entries named
    in `files` (the FAQ folder's) are listed even when nothing offered them."""
    uses = {name: EntryUse(name) for name in files}
    for offer in offers:
        ended = outcome(offer, now)
        for name in dict.fromkeys(offer.files):
            uses.setdefault(name, EntryUse(name)).outcomes[ended] += 1
    return sorted(uses.values(), key=lambda use: (-use.offered, use.file))
