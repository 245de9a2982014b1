"""Who of a customer's To and Cc joins the ticket (core.participants), with plain values."""

from __future__ import annotations

import time

import pytest

from mailbridge.core.message import Address
from mailbridge.core.participants import (
    ALREADY,
    AUTOMATED,
    MAX_SKIPPED_LISTED,
    OVER_LIMIT,
    REMOVED,
    STAFF,
    UNUSABLE,
    Exclusions,
    choose_participants,
    skipped_summary,
)

pytestmark = pytest.mark.unit

RULES = Exclusions.of(
    own=["support@shop.example", "sales@shop.example"],
    staff=["alice@shop.example", "team@shop.example"],
    domains=["staff.shop.example"],
)
ADA = "ada@customer.example"


def choose(*addresses: str, **kwargs: object) -> tuple[list[str], list[tuple[str, str]]]:
    options: dict[str, object] = {
        "requester": ADA,
        "sender": ADA,
        "active": frozenset(),
        "removed": frozenset(),
    }
    options.update(kwargs)
    choice = choose_participants(
        [Address("", a) for a in addresses],
        RULES,
        **options,  # type: ignore[arg-type]
    )
    return [a.address for a in choice.add], [(s.address, s.reason) for s in choice.skipped]


def test_a_copied_colleague_joins_and_the_usual_company_is_silent() -> None:
    added, skipped = choose("support@shop.example", ADA, "marco@customer.example")
    assert added == ["marco@customer.example"]
    assert skipped == []


def test_our_mailboxes_in_any_plus_form_never_join() -> None:
    token = "support+t1000-abc12-aaaaaaaaaaaaaaaa@shop.example"
    added, skipped = choose(token, "SALES+x@shop.example", "support@shop.example")
    assert (added, skipped) == ([], [])


def test_staff_addresses_and_domains_are_skipped_with_the_reason() -> None:
    added, skipped = choose("alice@shop.example", "bob@staff.shop.example", "team@shop.example")
    assert added == []
    assert skipped == [
        ("alice@shop.example", STAFF),
        ("bob@staff.shop.example", STAFF),
        ("team@shop.example", STAFF),
    ]


def test_someone_removed_by_staff_is_not_brought_back() -> None:
    added, skipped = choose("marco@customer.example", removed={"marco@customer.example"})
    assert added == [] and skipped == [("marco@customer.example", REMOVED)]


def test_an_active_participant_is_not_added_twice_and_case_does_not_matter() -> None:
    added, skipped = choose(
        "Marco@Customer.Example",
        "marco@customer.example",
        "eva@customer.example",
        active={"eva@customer.example"},
    )
    assert added == ["marco@customer.example"]
    assert ("eva@customer.example", ALREADY) not in skipped  # silent: nothing new


def test_the_requester_is_never_a_participant_even_when_someone_else_writes() -> None:
    added, _ = choose(ADA, "eva@customer.example", sender="marco@customer.example")
    assert added == ["eva@customer.example"]


@pytest.mark.parametrize(
    "address",
    ["", "no-at-sign", "a@b@c", "x" * 250 + "@example.com", "ev\r\nil@example.com"],
)
def test_an_address_no_mail_can_be_written_to_is_skipped(address: str) -> None:
    added, skipped = choose(address)
    assert added == [] and skipped == [(address.lower(), UNUSABLE)]


@pytest.mark.parametrize(
    "address",
    [
        "noreply@shop.example",
        "No-Reply@x.example",
        "mailer-daemon@x.example",
        "postmaster@x.example",
    ],
)
def test_an_automated_address_in_cc_never_joins(address: str) -> None:
    added, skipped = choose(address, "noreplyjoe@customer.example")
    assert added == ["noreplyjoe@customer.example"]
    assert skipped == [(address.lower(), AUTOMATED)]


def test_a_hostile_cc_list_of_5000_adds_at_most_the_limit_in_linear_time() -> None:
    crowd = [f"victim{i}@example.org" for i in range(5000)]
    started = time.thread_time()  # CPU time of this thread: the same on a busy machine
    choice = choose_participants(
        [Address("", a) for a in crowd],
        RULES,
        requester=ADA,
        sender=ADA,
        active=frozenset(),
        removed=frozenset(),
        limit=20,
    )
    assert time.thread_time() - started < 2.0
    assert [a.address for a in choice.add] == crowd[:20]
    assert len(choice.skipped) == 4980
    assert {s.reason for s in choice.skipped} == {OVER_LIMIT}
    summary = skipped_summary(choice.skipped)
    assert summary["skipped_count"] == 4980
    assert isinstance(summary["skipped"], list) and len(summary["skipped"]) == MAX_SKIPPED_LISTED


def test_a_limit_of_zero_adds_nobody() -> None:
    added, skipped = choose("marco@customer.example", limit=0)
    assert added == [] and skipped == [("marco@customer.example", OVER_LIMIT)]


def test_staff_may_add_a_customer_but_not_ours_or_staff() -> None:
    assert RULES.why_not("marco@customer.example") == ""
    assert RULES.why_not("support+t1-x-y@shop.example") != ""
    assert RULES.why_not("alice@shop.example") == STAFF
    assert RULES.why_not("x@staff.shop.example") == STAFF


def test_a_name_is_kept_as_written() -> None:
    choice = choose_participants(
        [Address("Marco\r\nBcc: x@evil.example", "marco@customer.example")],
        RULES,
        requester=ADA,
        sender=ADA,
        active=frozenset(),
        removed=frozenset(),
    )
    # Stored as written; core.compose cleans it where it reaches a header.
    assert choice.add[0].name == "Marco\r\nBcc: x@evil.example"
