"""core.ack_policy: the limits' keys, who counts as authenticated, what a minimal
acknowledgement keeps."""

from __future__ import annotations

import pytest

from mailbridge.adapters.template_context import sample_context
from mailbridge.core.ack_policy import (
    LIMITS,
    MINIMAL_KEEPS,
    authenticated_by,
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
