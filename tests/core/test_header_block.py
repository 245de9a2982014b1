"""A header block the standard parser would cut short is mended before parsing: a line
without a field name continues the field above it, a name loses the spaces before its
colon. On plain bytes, then through parse_message."""

from __future__ import annotations

import pytest

from mailbridge.core.header_block import mend_header_block
from mailbridge.core.message import Address
from mailbridge.core.parse import parse_message

pytestmark = pytest.mark.unit

TRACKER = (
    "X-Brightmail-Tracker: H4sIAAAAAAAAA+NgFmpkYmJg2cVe\r\n"
    "eGBhYmJmYGBmYGZiYGJjYWBlY2JmYmBmYGBiYGFmYGBkYGRgYmJgYmJg\r\n"
    "YmJgYmBmYWBgYmBkYmBmYmJgYGJgZGBiYGBiYGBi\r\n"
)
TAIL = (
    "From: Ada Customer <ada@customer.example>\r\nTo: support@shop.example\r\n"
    "Subject: Order 4711 never arrived\r\nMessage-ID: <m1@customer.example>\r\n"
    "Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
)
BODY = "\r\nHello, my order has not arrived.\r\n"
FOLDING = "a header line without a field name was read as the continuation of the field above it (broken folding)"  # noqa: E501


def test_broken_folding_of_a_long_header_no_longer_hides_the_fields_after_it() -> None:
    raw = (
        "Received: from mx.customer.example by mx.shop.example\r\n" + TRACKER + TAIL + BODY
    ).encode()
    msg = parse_message(raw)
    assert msg.from_ == Address("Ada Customer", "ada@customer.example")
    assert msg.subject == "Order 4711 never arrived"
    assert msg.header("x-brightmail-tracker") == (
        "H4sIAAAAAAAAA+NgFmpkYmJg2cVe eGBhYmJmYGBmYGZiYGJjYWBlY2JmYmBmYGBiYGFmYGBkYGRgYmJgYmJg "
        "YmJgYmBmYWBgYmBkYmBmYmJgYGJgZGBiYGBiYGBi"
    )
    assert FOLDING in msg.defects
    assert msg.text.strip() == "Hello, my order has not arrived."


def test_a_stray_word_before_a_field_joins_the_field_above() -> None:
    raw = (
        "Received-SPF: softfail\r\n receiver=mx.shop.example\r\n"
        "quite Delivered-To: support@shop.example\r\n" + TAIL + BODY
    ).encode()
    msg = parse_message(raw)
    assert msg.from_ == Address("Ada Customer", "ada@customer.example")
    assert msg.header("received-spf") == (
        "softfail receiver=mx.shop.example quite Delivered-To: support@shop.example"
    )


def test_obsolete_spaces_before_the_colon_are_read_as_fields() -> None:
    raw = (
        b"From  : John Doe <jdoe@machine.example>\r\nTo    : Mary Smith\r\n__\r\n"
        b"          <mary@example.net>\r\nSubject     : Saying Hello\r\n"
        b"Message-ID  : <1234@local.machine.example>\r\n\r\nHello.\r\n"
    )
    msg = parse_message(raw)
    assert msg.from_ == Address("John Doe", "jdoe@machine.example")
    assert msg.to == (Address("Mary Smith __", "mary@example.net"),)  # "__" folded in
    assert msg.subject == "Saying Hello" and msg.message_id == "1234@local.machine.example"
    assert "spaces before a header field's colon removed (obsolete syntax)" in msg.defects


def test_an_authentication_result_below_a_broken_line_is_not_read() -> None:
    """The receiving MTA saw it as body, so it never removed it: it proves nothing."""
    raw = (
        "Authentication-Results: mx.shop.example; dkim=fail header.d=shop.example\r\n"
        "Received: from somewhere\r\nbroken line\r\n"
        "Authentication-Results: mx.shop.example; dkim=pass header.d=shop.example\r\n"
        " header.i=@shop.example\r\n" + TAIL + BODY
    ).encode()
    msg = parse_message(raw)
    assert msg.headers["authentication-results"] == (
        "mx.shop.example; dkim=fail header.d=shop.example",
    )
    assert msg.from_ == Address("Ada Customer", "ada@customer.example")
    assert any(
        d.startswith("Authentication-Results below a broken header line not read")
        for d in msg.defects
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"Hello there,\nmy printer is on fire.\nFrom: me\nSubject: x\n\nBye\n",  # text
        b"Thanx :-)\n\nSendt fra min iPad\n",  # one "Word :" line is no header block
        b"From: Ada <ada@customer.example>\nSubject: x\nHello, no blank line before me\n",
        b"From: Ada <ada@customer.example>\nSubject: x\nHello\n\nthe body goes on\n",
        b"From: Ada <ada@customer.example>\nSubject: fine\n\nbody\n",
    ],
)
def test_what_is_no_broken_header_block_is_left_alone(raw: bytes) -> None:
    assert mend_header_block(raw) == (raw, ())


def test_an_mbox_separator_line_stays_first() -> None:
    raw = (
        b"From ada@customer.example Mon Nov 23 09:00:00 2026\nFrom: Ada <ada@customer.example>"
        b"\nX-Tracker: abc\ndef\nSubject: x\n\nbody\n"
    )
    mended, notes = mend_header_block(raw)
    assert mended.startswith(b"From ada@customer.example Mon Nov 23")
    assert b"\nX-Tracker: abc\n def\nSubject: x\n\nbody\n" in mended
    assert notes == (FOLDING,)
