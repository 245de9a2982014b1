"""core/envelope: which mailbox an LMTP recipient reaches, and the trace headers."""

from __future__ import annotations

import pytest

from mailbridge.core.bounce import make_return_path
from mailbridge.core.envelope import header_safe, mailbox_for, recipient_routes, trace_headers

pytestmark = pytest.mark.unit

ROUTES = recipient_routes(
    [("support", "support@shop.example"), ("sales", "Sales@Shop.Example")],
    [("support", "bounces@shop.example"), ("sales", "bounces@sales.example")],
)


@pytest.mark.parametrize(
    ("recipient", "mailbox"),
    [
        ("support@shop.example", "support"),
        ("SUPPORT@shop.EXAMPLE", "support"),
        ("sales@shop.example", "sales"),
        ("support+t1042-abc-def@shop.example", "support"),  # a reply token
        (make_return_path("support@shop.example", 42, "<m@shop.example>"), "support"),
        ("bounces+b7-xyz@shop.example", "support"),  # VERP to a brand's envelope sender
        ("bounces+b9-xyz@sales.example", "sales"),  # another brand's comes back to its own
        ("nobody@shop.example", None),
        ("support@other.example", None),
        ("+x@shop.example", None),
        ("support", None),
        ("@shop.example", None),
        ("support+" + "x" * 400 + "@shop.example", None),
    ],
)
def test_a_recipient_reaches_its_mailbox_or_none(recipient: str, mailbox: str | None) -> None:
    assert mailbox_for(recipient, ROUTES) == mailbox


def test_a_mailbox_address_named_as_envelope_sender_keeps_its_own_mailbox() -> None:
    routes = recipient_routes([("a", "a@x.example"), ("b", "b@x.example")], [("a", "b@x.example")])
    assert mailbox_for("b+b1-c@x.example", routes) == "b"


def test_trace_headers_name_the_sender_and_each_recipient() -> None:
    assert trace_headers("", ["support@shop.example"]) == (
        b"Return-Path: <>\r\nDelivered-To: support@shop.example\r\n"
    )
    assert trace_headers("ädä@c.example", ["s@x"]).startswith(
        "Return-Path: <ädä@c.example>".encode()
    )


@pytest.mark.parametrize(
    "hostile",
    ["a\r\nX-Evil: 1@x", "a\nb@x", "a\x00b@x", "a b@x", "a>b@x", "<a@x", "a\x85@x", "a\x7f@x"],
)
def test_hostile_an_address_cannot_add_a_header(hostile: str) -> None:
    assert not header_safe(hostile)
    with pytest.raises(ValueError, match="unfit"):
        trace_headers(hostile, ["s@x"])
    with pytest.raises(ValueError, match="unfit"):
        trace_headers("", [hostile])
