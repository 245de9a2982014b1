"""How many messages go into one fetch or one processing batch: bounded in count and in
bytes, so that a pass over a mailbox of large mails holds about as much in memory as one
over small ones (docs/architecture.md, "1. Fetch" and "3. Process").

A message larger than the byte budget still goes, alone: the budget bounds what a batch
adds to the one message that must be held anyway, it never holds a message back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

_T = TypeVar("_T")

# Bytes of raw mail one FETCH or one processing batch holds at most, beyond its first
# message: 200 mails of a support mailbox's usual 20-100 KB fit many times over; 30 scanned
# PDFs of 30 MB held together made a pass take 3.9 GB.
BATCH_BYTES = 16 * 1024 * 1024


def leading(sizes: Iterable[int], budget: int) -> int:
    """How many of the leading `sizes` fit in `budget` together, and at least one: a
    first size over the budget goes alone. 0 when there are none."""
    taken = total = 0
    for size in sizes:
        total += max(size, 0)
        if taken and total > budget:
            break
        taken += 1
    return taken


def groups(
    items: Sequence[_T], sizes: Sequence[int], count: int, budget: int
) -> Iterator[Sequence[_T]]:
    """`items` in order, in runs of at most `count` whose `sizes` (one per item) fit in
    `budget` together, each run at least one item long."""
    if count < 1:
        raise ValueError("count must be at least 1")
    start = 0
    while start < len(items):
        taken = leading(sizes[start : start + count], budget)
        yield items[start : start + taken]
        start += taken
