"""core.ack_policy: the limits' keys, who counts as authenticated, what a minimal
acknowledgement keeps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from mailbridge.adapters.template_context import sample_context
from mailbridge.core.ack_policy import (
    LIMITS,
    MINIMAL_KEEPS,
    AckFacts,
    LimitKey,
    authenticated_by,
    decide,
    limit_keys,
    minimal_context,
)

pytestmark = pytest.mark.unit

MX = "mx.shop.example"


def results(value: str) -> dict[str, tuple[str, ...]]:
    return {"authentication-results": (value,)}


def test_limit_keys_name_the_address_its_domain_and_the_mailbox() -> None:
    keys = limit_keys("Ada@Customer.Example", "support", 5, 20, 200, authenticated=False)
    assert [k.limit for k in keys] == list(LIMITS)
    assert [(k.key, k.per_hour) for k in keys] == [
        ("Ada@Customer.Example", 5),
        ("customer.example", 20),
        ("support", 200),
    ]


def test_an_authenticated_domain_is_not_limited_as_a_domain() -> None:
    keys = limit_keys("ada@gmail.example", "support", 5, 20, 200, authenticated=True)
    assert [(k.limit, k.key) for k in keys] == [
        ("address", "ada@gmail.example"),
        ("mailbox", "support"),
    ]


def test_authenticated_only_by_the_trusted_mta_for_that_domain() -> None:
    dkim = results(f"{MX}; dkim=pass header.d=customer.example")
    assert authenticated_by(dkim, MX, "ada@customer.example") == "dkim"
    assert authenticated_by(dkim, MX, "victim@victim.example") is None
    assert authenticated_by(dkim, None, "ada@customer.example") is None
    assert authenticated_by(dkim, "mx.other.example", "ada@customer.example") is None
    spf = results(f"{MX}; spf=pass smtp.mailfrom=bounce@mail.customer.example")
    assert authenticated_by(spf, MX, "ada@customer.example") == "spf"
    assert authenticated_by({}, MX, "ada@customer.example") is None


def test_minimal_context_blanks_everything_the_sender_chose() -> None:
    full = sample_context("en")
    minimal = minimal_context(full)
    assert minimal["minimal"] is True
    assert set(minimal) == set(full) | {"minimal"}
    for key in ("subject", "requester_name", "excerpt", "reply_text", "staff_name", "event"):
        assert minimal[key] == ""
    for key in ("faq", "digest", "attachments", "errors"):
        assert minimal[key] == []
    assert minimal["links"] == {}
    for key in MINIMAL_KEEPS & set(full):
        assert minimal[key] == full[key]
    assert minimal["ticket_tag"] == "[#1042]"


# --- the decision ------------------------------------------------------------------------

NOW = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
ADA = "ada@customer.example"


def facts(**changes: object) -> AckFacts:
    """A customer's mail that gets a minimal acknowledgement, unless `changes` say otherwise."""
    base = AckFacts(
        kind="customer",
        rules=(),
        automated=False,
        withheld_by=(),
        address=ADA,
        own_addresses=frozenset({"support@shop.example"}),
        bouncing="",
        backlog_age=None,
        arrived=NOW,
        now=NOW,
        no_ack_rule="",
        limits=counted(0, 0, 0),
        authenticated=None,
        unauthenticated_form="minimal",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def counted(
    address: int, domain: int, mailbox: int, *, authenticated: bool = False
) -> tuple[tuple[LimitKey, int], ...]:
    keys = limit_keys(ADA, "support", 5, 20, 200, authenticated=authenticated)
    counts = {"address": address, "domain": domain, "mailbox": mailbox}
    return tuple((key, counts[key.limit]) for key in keys)


def test_an_unauthenticated_address_gets_a_minimal_acknowledgement() -> None:
    assert decide(facts()).form == "minimal"
    assert decide(facts(unauthenticated_form="full")).form == "full"


def test_an_authenticated_address_gets_it_in_full() -> None:
    decision = decide(facts(authenticated="dkim"))
    assert (decision.form, decision.authenticated) == ("full", "dkim")


def test_automated_and_bulk_mail_get_none() -> None:
    decision = decide(facts(kind="autoreply", automated=True, rules=("auto-submitted",)))
    assert (decision.form, decision.check) == ("skip", "automated")
    assert decision.reason == "automated mail (autoreply: auto-submitted)"
    assert decision.data == {"rules": ["auto-submitted"]}
    bulk = decide(facts(withheld_by=("list-unsubscribe",)))
    assert (bulk.form, bulk.check) == ("skip", "classified")


def test_no_acknowledgement_to_an_address_it_cannot_reach() -> None:
    own = facts(address="support@shop.example")
    for case in (facts(address=""), facts(address="nobody"), own, facts(address="a b@x.example")):
        assert (decide(case).form, decide(case).check) == ("skip", "unusable_address")
    assert decide(own).reason == "sender is one of our own addresses"


def test_no_acknowledgement_to_a_bouncing_address() -> None:
    decision = decide(facts(bouncing="address bouncing since 2024-03-01T09:00"))
    assert (decision.check, decision.reason) == (
        "bouncing",
        "address bouncing since 2024-03-01T09:00",
    )


def test_imported_backlog_older_than_its_age_gets_none() -> None:
    old = facts(backlog_age=timedelta(hours=24), arrived=NOW - timedelta(hours=25))
    assert decide(old).check == "backlog"
    recent = facts(backlog_age=timedelta(hours=24), arrived=NOW - timedelta(hours=23))
    assert decide(recent).form == "minimal"
    assert decide(facts(arrived=NOW - timedelta(days=9))).form == "minimal"  # not backlog


def test_a_routing_rule_can_withhold_it() -> None:
    decision = decide(facts(no_ack_rule='rule "newsletters"'))
    assert (decision.check, decision.reason) == ("rule", 'no_ack: rule "newsletters"')


@pytest.mark.parametrize(
    ("counts", "limit"),
    [((5, 0, 0), "address"), ((4, 20, 0), "domain"), ((4, 19, 200), "mailbox")],
)
def test_each_hourly_limit_withholds_it_once_reached(
    counts: tuple[int, int, int], limit: str
) -> None:
    decision = decide(facts(limits=counted(*counts)))
    assert (decision.form, decision.check) == ("skip", "rate_limit")
    assert decision.limit is not None and decision.limit.limit == limit
    assert decision.data["limit"] == limit
    assert decide(facts(limits=counted(*(c - 1 if c else 0 for c in counts)))).form != "skip"


def test_the_narrowest_limit_is_named_first() -> None:
    decision = decide(facts(limits=counted(9, 99, 999)))
    assert decision.limit is not None and decision.limit.limit == "address"
    assert decision.recent == 9
    assert decision.reason == "rate limit: 9 acknowledgements to this address in the last hour"


def test_an_authenticated_domain_has_no_domain_limit() -> None:
    decision = decide(facts(authenticated="dkim", limits=counted(0, 99, 0, authenticated=True)))
    assert decision.form == "full"


def test_the_checks_run_in_order() -> None:
    everything = facts(
        automated=True, kind="bounce", address="", bouncing="bouncing", limits=counted(9, 9, 9)
    )
    assert decide(everything).check == "automated"
    assert decide(replace(everything, automated=False)).check == "unusable_address"
