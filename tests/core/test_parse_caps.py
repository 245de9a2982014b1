"""Counts the parser stops at: MIME parts, nesting depth. A message over a cap is read up to
it, keeps its headers and the text before the cut, and says what was cut."""

from __future__ import annotations

import time

import pytest

from mailbridge.core.message import ParseLimits
from mailbridge.core.parse import parse_message

pytestmark = pytest.mark.unit

HEAD = (
    b"From: Mallory <mallory@evil.example>\r\nTo: support@shop.example\r\n"
    b"Subject: %s\r\nMessage-ID: <%s@evil.example>\r\n"
    b"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
)


def many_parts(count: int) -> bytes:
    parts = b"".join(
        b"--B\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(count)
    )
    return (
        HEAD % (b"parts", b"parts")
        + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
        + parts
        + b"--B--\r\n"
    )


def nested(levels: int, leaf: bytes = b"the bottom") -> bytes:
    """`levels` multiparts, each the only part of the one above, with a text at the bottom."""
    out = [HEAD % (b"nest", b"nest"), b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"]
    out += [
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i - 1, i)
        for i in range(1, levels)
    ]
    out.append(b"--b%d\r\nContent-Type: text/plain\r\n\r\n%s\r\n" % (levels - 1, leaf))
    out += [b"--b%d--\r\n" % i for i in range(levels - 1, -1, -1)]
    return b"".join(out)


def forwarded(levels: int) -> bytes:
    """A mail forwarded as an attachment inside a forwarded mail, `levels` deep."""
    inner = b"From: a@example.org\r\nSubject: innermost\r\n\r\nhello\r\n"
    for level in range(levels):
        inner = (
            b"From: f%d@example.org\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: message/rfc822\r\n\r\n" % level + inner
        )
    return HEAD % (b"fwd", b"fwd") + inner.split(b"MIME-Version: 1.0\r\n", 1)[1]


def test_fifty_thousand_parts_are_read_up_to_the_cap_quickly() -> None:
    started = time.perf_counter()
    msg = parse_message(many_parts(50_000))
    elapsed = time.perf_counter() - started
    assert msg.defects == ("more than 1000 MIME parts: the parts after the 1000th were not read",)
    lines = msg.text.split("\n")
    assert lines[:2] == ["part 0", "part 1"] and lines[-1] == "part 999"
    assert msg.subject == "parts" and msg.from_ is not None
    assert elapsed < 10, "reading stops at the cap instead of building 50,000 parts"


def test_a_message_at_the_part_cap_is_read_whole() -> None:
    msg = parse_message(many_parts(5), ParseLimits(max_parts=5))
    assert msg.text.split("\n") == [f"part {i}" for i in range(5)]
    assert msg.defects == ()
    cut = parse_message(many_parts(6), ParseLimits(max_parts=5))
    assert cut.text.split("\n") == [f"part {i}" for i in range(5)]
    assert cut.defects == ("more than 5 MIME parts: the parts after the 5th were not read",)


def test_five_thousand_levels_keep_the_headers_and_say_where_reading_stopped() -> None:
    msg = parse_message(nested(5000))
    assert msg.defects == ("MIME parts nested deeper than 50 levels: what lies below was not read",)
    assert (msg.subject, msg.message_id) == ("nest", "nest@evil.example")
    assert msg.from_ is not None and msg.from_.address == "mallory@evil.example"
    assert msg.attachments == ()


def test_nesting_at_the_depth_cap_is_read_whole() -> None:
    msg = parse_message(nested(50))  # the text is 50 levels below the message
    assert (msg.text, msg.defects) == ("the bottom", ())
    cut = parse_message(nested(51))
    assert cut.text == ""
    assert cut.defects == ("MIME parts nested deeper than 50 levels: what lies below was not read",)


def test_forwarded_messages_count_as_levels() -> None:
    msg = parse_message(forwarded(10), ParseLimits(max_depth=4))
    assert msg.defects == ("MIME parts nested deeper than 4 levels: what lies below was not read",)
    assert [a.content_type for a in msg.attachments][:1] == ["message/rfc822"]
    assert parse_message(forwarded(3), ParseLimits(max_depth=4)).defects == ()


@pytest.mark.parametrize("count", [999, 1000])
def test_ordinary_multipart_mail_is_untouched(count: int) -> None:
    assert parse_message(many_parts(count)).defects == ()
