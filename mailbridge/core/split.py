"""Splitting a ticket: the decisions, as pure functions (tickets/split.py does the moving).

A split moves one customer message and everything after it to a new ticket. Whether it may
happen, and whether the ticket left behind still waits for us once that message is gone,
are decided here from plain values (docs/architecture.md, "Merge").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mailbridge.core.collision import Posted, is_news
from mailbridge.core.correlate import without_tags
from mailbridge.core.parse import normalize_subject

__all__ = ["SplitPoint", "answered_after_split", "split_problem", "split_subject"]


@dataclass(frozen=True, slots=True)
class SplitPoint:
    """The article a split would start at, as it is now."""

    article_id: int
    ticket_id: int  # the ticket it is on now (it may have moved since it was shown)
    customer: bool  # a customer's own message: in, from a customer, classified customer


def split_problem(
    ticket_id: int,
    number: int,
    merged_into: int | None,
    point: SplitPoint | None,
    first_article_id: int | None,
) -> str:
    """Why ticket `number` may not be split at `point` (None: no article was identified);
    "" when it may. A split starts at a customer's message of this very ticket, and never
    at its first article: something must stay behind."""
    if merged_into is not None:
        return f"ticket #{number} is merged into #{merged_into}; split that ticket instead"
    if point is None:
        return "no message to split at"
    if point.ticket_id != ticket_id:
        return f"article {point.article_id} is not on ticket #{number}"
    if not point.customer:
        return f"article {point.article_id} is not a customer's message; a split starts at one"
    if point.article_id == first_article_id:
        return (
            f"article {point.article_id} is the first of ticket #{number}: splitting there "
            "would leave nothing behind"
        )
    return ""


def answered_after_split(remaining: Iterable[Posted]) -> bool:
    """Once the split-off messages are gone, was the last customer message left answered?

    True when a staff answer that reached the customer is newer than every customer
    message left (or there is none left): the ticket waits on its customer, as after a
    staff reply. False when a customer message left is still unanswered, or nothing on the
    ticket says either (its deadlines then stay as they are)."""
    last_customer = last_answer = 0
    for article in remaining:
        if not is_news(article):
            continue
        if article.direction == "in":
            last_customer = max(last_customer, article.article_id)
        else:
            last_answer = max(last_answer, article.article_id)
    return last_answer > last_customer


def split_subject(subject: str, tag_prefix: str, fallback: str) -> str:
    """The new ticket's subject: the message's, without reply prefixes and without the
    old ticket's tag (the new ticket's own is added to every mail); `fallback` (the old
    ticket's subject) when nothing is left."""
    return normalize_subject(without_tags(normalize_subject(subject), tag_prefix)) or fallback
