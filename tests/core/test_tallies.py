"""The counters' pure rules: a label value the configuration does not name is "other", a
first response falls in the smallest bucket that holds it, and one observation is a bucket
row and a sum row."""

from __future__ import annotations

import pytest

from mailbridge.core import tallies
from mailbridge.core.tallies import OTHER, bounded, bucket_bound, labels, le_label, observation

pytestmark = pytest.mark.unit

KNOWN = frozenset({"support", "billing"})


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("support", "support"),
        ("billing", "billing"),
        ("Billing", OTHER),  # names are compared as written
        ("evil-queue", OTHER),
        ("ada@customer.example", OTHER),
        ("1042", OTHER),
        ("", OTHER),
        (None, OTHER),
    ],
)
def test_only_a_name_the_configuration_holds_is_a_label_value(
    value: str | None, shown: str
) -> None:
    assert bounded(value, KNOWN) == shown


@pytest.mark.parametrize(
    ("seconds", "bound"),
    [
        (-5.0, 300.0),  # a clock step back is not a negative wait
        (0.0, 300.0),
        (300.0, 300.0),  # a bound holds its own value, as Prometheus's le does
        (300.001, 900.0),
        (7200.0, 7200.0),
        (10800.0, 14400.0),
        (7 * 86400.0, 7 * 86400.0),
        (7 * 86400.0 + 1, float("inf")),
    ],
)
def test_a_first_response_falls_in_the_smallest_bucket_that_holds_it(
    seconds: float, bound: float
) -> None:
    assert bucket_bound(seconds) == bound


def test_the_buckets_grow_and_their_labels_read_back_as_numbers() -> None:
    buckets = tallies.FIRST_RESPONSE_BUCKETS
    assert list(buckets) == sorted(set(buckets))
    assert [float(le_label(b)) for b in buckets] == list(buckets)
    assert le_label(float("inf")) == "+Inf"


def test_one_observation_is_a_bucket_row_and_a_sum_row() -> None:
    key = {"mailbox": "support", "queue": "billing", "policy": "standard"}
    rows = list(observation(tallies.FIRST_RESPONSE, key, 10800.0))
    assert rows == [
        ("first_response_seconds_bucket", labels(**key, le="14400.0"), 1.0),
        ("first_response_seconds_sum", labels(**key), 10800.0),
    ]
    [late, _] = observation(tallies.FIRST_RESPONSE, key, 30 * 86400.0)
    assert ("le", "+Inf") in late[1]
    [_, early] = observation(tallies.FIRST_RESPONSE, key, -3.0)
    assert early[2] == 0.0


def test_every_counter_says_its_labels_and_what_it_counts() -> None:
    for name, (names, description) in tallies.COUNTERS.items():
        assert name.islower() and not name.endswith("_total")
        assert len(set(names)) == len(names)
        assert description and "ticket number" not in description
        assert not {"address", "ticket", "from", "to", "subject"} & set(names), name
