"""Merging tickets: the decisions, as pure functions (tickets/merge.py does the moving).

Which ticket a chain of merges ends at, whether a merge or an unmerge may happen, and which
first-response deadline survives on the ticket merged into.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_HOPS = 10  # merges followed from one ticket before the chain counts as broken
UNMERGE_WINDOW = timedelta(hours=24)


def chain_end(start: int, merged_into: Callable[[int], int | None]) -> int | None:
    """The ticket a chain of merges from `start` ends at (`start` itself when it is not
    merged); None when the chain loops or is longer than MAX_HOPS, which no merge makes,
    so a damaged database cannot send mail round in circles."""
    seen = {start}
    current = start
    for _ in range(MAX_HOPS + 1):
        following = merged_into(current)
        if following is None:
            return current
        if following in seen:
            return None
        seen.add(following)
        current = following
    return None


@dataclass(frozen=True, slots=True)
class MergeSide:
    """What the merge decision needs to know of one ticket."""

    id: int
    number: int
    mailbox: str
    merged_into: int | None  # the number of the ticket it was merged into, if it was


def merge_problem(
    source: MergeSide,
    asked: int,
    target: MergeSide | None,
    *,
    across_mailboxes: bool,
) -> str:
    """Why `source` may not be merged into ticket number `asked`, whose chain of merges ends
    at `target` (None: no such ticket, or a broken chain); "" when it may."""
    if source.merged_into is not None:
        return f"ticket #{source.number} is already merged into #{source.merged_into}"
    if asked == source.number:
        return f"ticket #{source.number} cannot be merged into itself"
    if target is None:
        return f"no ticket #{asked} to merge into (or its merges go round in a circle)"
    if target.id == source.id:
        return (
            f"ticket #{asked} was merged into #{source.number}: merging #{source.number} "
            "into it would make a circle"
        )
    if target.mailbox != source.mailbox and not across_mailboxes:
        return (
            f"ticket #{source.number} came in through mailbox {source.mailbox!r} and "
            f"#{target.number} through {target.mailbox!r}; tickets of different mailboxes "
            "are merged only from the command line, with --across-mailboxes"
        )
    return ""


def unmerge_problem(
    number: int,
    merged_at: datetime | None,
    target_merged_into: int | None,
    now: datetime,
) -> str:
    """Why ticket `number` may not be unmerged; "" when it may: it is merged, less than
    UNMERGE_WINDOW ago, and the ticket it went into was not merged further since."""
    if merged_at is None:
        return f"ticket #{number} is not merged"
    if now - merged_at > UNMERGE_WINDOW:
        return f"ticket #{number} was merged more than 24 hours ago; it can no longer be unmerged"
    if target_merged_into is not None:
        return (
            f"the ticket #{number} was merged into has since been merged into "
            f"#{target_merged_into}; unmerge that first"
        )
    return ""


def surviving_first_response(
    target_due: datetime | None,
    target_responded: bool,
    source_due: datetime | None,
    source_responded: bool,
) -> datetime | None:
    """The first-response deadline the merged ticket keeps: the earlier of the two while
    neither was answered (someone has waited since then); a deadline already met, or a
    source that was answered, leaves the target's as it was."""
    if target_responded or source_responded:
        return target_due
    dues = [due for due in (target_due, source_due) if due is not None]
    return min(dues) if dues else None
