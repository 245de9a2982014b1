"""Merge decisions, with plain values: where a chain of merges ends, what is refused, and
which first-response deadline survives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailbridge.core.merge import (
    MAX_HOPS,
    MergeSide,
    chain_end,
    merge_problem,
    surviving_first_response,
    unmerge_problem,
)

pytestmark = pytest.mark.unit

T = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


def test_chain_end_is_the_ticket_itself_or_the_last_of_its_merges() -> None:
    assert chain_end(5, lambda t: None) == 5
    assert chain_end(1, {1: 2, 2: 3}.get) == 3


def test_a_loop_or_an_overlong_chain_is_broken_and_the_walk_is_bounded() -> None:
    assert chain_end(1, {1: 2, 2: 1}.get) is None
    assert chain_end(1, {1: 1}.get) is None
    endless = {n: n + 1 for n in range(1, 10_000)}
    asked: list[int] = []

    def merged_into(ticket: int) -> int | None:
        asked.append(ticket)
        return endless.get(ticket)

    assert chain_end(1, merged_into) is None
    assert len(asked) <= MAX_HOPS + 1
    at_limit = {n: n + 1 for n in range(1, MAX_HOPS + 1)}
    assert chain_end(1, at_limit.get) == MAX_HOPS + 1


def side(id_: int, mailbox: str = "support", merged_into: int | None = None) -> MergeSide:
    return MergeSide(id_, 1000 + id_, mailbox, merged_into)


def test_merge_problems() -> None:
    source, target = side(2), side(1)
    assert merge_problem(source, 1001, target, across_mailboxes=False) == ""
    assert "itself" in merge_problem(source, 1002, source, across_mailboxes=False)
    assert "no ticket #1999" in merge_problem(source, 1999, None, across_mailboxes=False)
    merged = side(2, merged_into=1005)
    assert "already merged into #1005" in merge_problem(
        merged, 1001, target, across_mailboxes=False
    )
    # #1003 was merged into #1002: its chain ends at the source itself.
    assert "circle" in merge_problem(source, 1003, source, across_mailboxes=False)
    other = side(1, mailbox="sales")
    assert "--across-mailboxes" in merge_problem(source, 1001, other, across_mailboxes=False)
    assert merge_problem(source, 1001, other, across_mailboxes=True) == ""


def test_unmerge_problems() -> None:
    assert unmerge_problem(1002, T, None, T + 23 * H) == ""
    assert unmerge_problem(1002, T, None, T + 24 * H) == ""
    assert "more than 24 hours" in unmerge_problem(1002, T, None, T + 24 * H + timedelta(seconds=1))
    assert "not merged" in unmerge_problem(1002, None, None, T)
    assert "#1007" in unmerge_problem(1002, T, 1007, T + H)


def test_the_earlier_unanswered_first_response_deadline_survives() -> None:
    assert surviving_first_response(T + 8 * H, False, T + 2 * H, False) == T + 2 * H
    assert surviving_first_response(T + 2 * H, False, T + 8 * H, False) == T + 2 * H
    assert surviving_first_response(None, False, T + 2 * H, False) == T + 2 * H
    assert surviving_first_response(T + 8 * H, False, None, False) == T + 8 * H
    assert surviving_first_response(None, False, None, False) is None
    # The target was answered: its met deadline stays as it was.
    assert surviving_first_response(T + 8 * H, True, T + 2 * H, False) == T + 8 * H
    # The source was answered: nothing of it is still waiting for a first response.
    assert surviving_first_response(T + 8 * H, False, T + 2 * H, True) == T + 8 * H
