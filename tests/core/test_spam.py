"""core/spam.py: block and allow patterns, and which of lists and verdict holds."""

from __future__ import annotations

import pytest

from mailbridge.core.spam import FilterVerdict, first_match, judge, normalize_pattern

SPAM = FilterVerdict("spamassassin", spam=True, score=9.1, detail="score=9.1 required=5.0")
HAM = FilterVerdict("rspamd", spam=False, score=1.0, detail="no action")


@pytest.mark.parametrize(
    ("pattern", "address", "expected"),
    [
        ("spam.example", "a@spam.example", True),
        ("spam.example", "a@mx.spam.example", True),  # a domain holds its subdomains
        ("spam.example", "a@notspam.example", False),  # but not a longer name
        ("*@spam.example", "A@SPAM.EXAMPLE", True),
        ("*@spam.example", "a@mx.spam.example", False),  # a glob is exact
        ("noreply@*", "noreply@shop.example", True),
        ("noreply@*", "noreply-x@shop.example", False),
        ("a@x.example", "a@x.example", True),
        ("a@x.example", "b@x.example", False),
    ],
)
def test_a_pattern_names_what_it_says(pattern: str, address: str, expected: bool) -> None:
    assert (first_match(address, [normalize_pattern(pattern)]) is not None) is expected


@pytest.mark.parametrize("bad", ["", "  ", "a b@x.example", "a@b@c", "localhost", "x" * 321])
def test_a_bad_pattern_says_what_was_expected(bad: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        normalize_pattern(bad)


def test_patterns_are_kept_in_lower_case() -> None:
    assert normalize_pattern(" NoReply@* ") == "noreply@*"


def test_allow_beats_block_beats_the_verdict() -> None:
    lists = {"allow": ["partner.example"], "block": ["*@partner.example", "spam.example"]}
    allowed = judge("a@partner.example", **lists, verdict=SPAM)
    assert (allowed.spam, allowed.allowed, allowed.reason) == (
        False,
        True,
        "allowlist: partner.example",
    )
    blocked = judge("a@spam.example", **lists, verdict=HAM)
    assert (blocked.spam, blocked.reason) == (True, "blocklist: spam.example")
    flagged = judge("a@other.example", **lists, verdict=SPAM)
    assert (flagged.spam, flagged.reason) == (True, "spamassassin: score=9.1 required=5.0")


def test_no_list_and_no_spam_verdict_is_not_spam() -> None:
    assert not judge("a@other.example", block=["spam.example"], verdict=HAM).spam
    assert not judge("a@other.example").spam
    assert not judge("", block=["*"]).spam  # no sender: nothing a list can name
