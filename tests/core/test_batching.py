"""How many messages go into one fetch or one processing batch (core/batching.py)."""

from __future__ import annotations

import pytest

from mailbridge.core.batching import groups, leading


def test_leading_takes_what_fits_together() -> None:
    assert leading([300, 300, 300, 300], 1000) == 3
    assert leading([300, 700, 1], 1000) == 2  # exactly the budget fits
    assert leading([1, 2, 3], 1000) == 3


def test_a_first_message_over_the_budget_goes_alone_and_none_is_held_back() -> None:
    assert leading([5000, 1, 1], 1000) == 1
    assert leading([1, 5000, 1], 1000) == 1  # the large one waits for the next batch
    assert leading([], 1000) == 0


def test_a_negative_size_from_a_server_counts_as_nothing() -> None:
    assert leading([-(10**9), 600, 600], 1000) == 2


def test_groups_keep_order_and_every_item_once_within_count_and_bytes() -> None:
    items = list("abcdefgh")
    sizes = [400, 400, 400, 2000, 10, 10, 10, 10]
    found = [list(g) for g in groups(items, sizes, 3, 1000)]
    assert found == [["a", "b"], ["c"], ["d"], ["e", "f", "g"], ["h"]]
    assert [x for g in found for x in g] == items


def test_groups_of_small_items_are_bounded_by_count_alone() -> None:
    items = list(range(450))
    assert [len(g) for g in groups(items, [1] * 450, 200, 10**6)] == [200, 200, 50]
    assert list(groups([], [], 200, 10**6)) == []
    with pytest.raises(ValueError):
        list(groups(items, [1] * 450, 0, 10**6))
