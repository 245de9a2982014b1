"""The split decisions with plain values: where a split may start, whether the ticket left
behind was answered, and the new ticket's subject."""

from __future__ import annotations

import time

import pytest

from mailbridge.core.collision import Posted
from mailbridge.core.split import SplitPoint, answered_after_split, split_problem, split_subject


def problem(point: SplitPoint | None, *, first: int | None = 1, merged: int | None = None) -> str:
    return split_problem(7, 1000, merged, point, first)


def test_a_split_starts_at_a_later_customer_message_of_this_ticket() -> None:
    assert problem(SplitPoint(5, 7, True)) == ""
    assert "no message to split at" in problem(None)
    assert "article 5 is not on ticket #1000" in problem(SplitPoint(5, 8, True))
    assert "is not a customer's message" in problem(SplitPoint(5, 7, False))
    assert "leave nothing behind" in problem(SplitPoint(1, 7, True))
    assert "merged into #1001; split that ticket" in problem(SplitPoint(5, 7, True), merged=1001)


def customer(article_id: int) -> Posted:
    return Posted(article_id, "in", "customer", "customer", False)


def staff(article_id: int, *, internal: bool = False) -> Posted:
    return Posted(article_id, "out", "staff", "note" if internal else "reply", internal)


@pytest.mark.parametrize(
    ("remaining", "answered"),
    [
        ([customer(1)], False),
        ([customer(1), staff(2)], True),
        ([customer(1), staff(2), customer(3)], False),
        ([customer(1), staff(2, internal=True)], False),  # a note answers nobody
        ([customer(1), Posted(2, "in", "unverified", "customer", False), staff(3)], True),
        ([customer(1), staff(2), Posted(3, "in", "system", "auto_reply", False)], True),
        ([], False),
    ],
)
def test_what_the_old_ticket_keeps_was_answered_or_not(
    remaining: list[Posted], answered: bool
) -> None:
    assert answered_after_split(remaining) is answered


def test_the_subject_loses_reply_prefixes_and_our_tags() -> None:
    assert split_subject("Re: [#1000] Scanner jams", "#", "Old") == "Scanner jams"
    assert split_subject("AW: Re: [#1000] Fwd: Scanner", "#", "Old") == "Scanner"
    assert split_subject("[#1000]", "#", "Old") == "Old"
    assert split_subject("", "#", "Old") == "Old"
    assert split_subject("[T-12] x [#12]", "T-", "Old") == "x [#12]"


def test_a_hostile_subject_costs_linear_time() -> None:
    subject = "Re: " + "[#" * 50_000 + "1" * 50_000
    began = time.thread_time()  # CPU time of this thread: the same on a busy machine
    assert split_subject(subject, "#", "Old").startswith("[#")
    assert time.thread_time() - began < 1.0
