"""HTML deeper than libxml2 reads still gives its text, with a defect; the tag stripper it
falls back to is linear and keeps what a reader sees."""

from __future__ import annotations

import time

import pytest

from mailbridge.core.html_strip import strip_tags, visible_length
from mailbridge.core.parse import parse_message

pytestmark = pytest.mark.unit

HEAD = (
    b"From: Ann <ann@example.org>\r\nTo: support@shop.example\r\nSubject: deep\r\n"
    b"Message-ID: <deep@example.org>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
)


def html_mail(html: str) -> bytes:
    return HEAD + html.encode()


@pytest.mark.parametrize("tag", ["div", "span", "table><tr><td"])
def test_text_nested_ten_thousand_deep_is_read(tag: str) -> None:
    closing = "</" + tag.split("><")[0] + ">"
    html = f"<html><body><p>Dear support,</p>{f'<{tag}>' * 10_000}my order 4711 is late"
    html += closing * 10_000 + "</body></html>"
    msg = parse_message(html_mail(html))
    assert "my order 4711 is late" in msg.text
    assert "Dear support," in msg.text
    assert any(
        d.startswith("HTML converted to") and d.endswith("text taken by removing its tags")
        for d in msg.defects
    )


def test_ordinary_html_keeps_the_converter_and_no_defect() -> None:
    html = (
        "<html><head><title>Re: order</title><style>p {color: red}</style></head><body>"
        "<p>Hello,</p><p>the <b>invoice</b> is missing.</p>"
        "<blockquote>On Monday you wrote: thanks</blockquote></body></html>"
    )
    msg = parse_message(html_mail(html))
    assert msg.defects == ()
    assert "the invoice is missing." in msg.text
    assert "> On Monday you wrote: thanks" not in msg.reply_text  # quotes still trimmed


def test_a_hidden_preheader_does_not_count_as_lost_text() -> None:
    html = (
        '<body><span style="display:none">Your weekly digest</span>'
        "<p>Hello, a question about my order number 4711 from last week.</p></body>"
    )
    assert parse_message(html_mail(html)).defects == ()


def test_the_stripper_keeps_what_a_reader_sees() -> None:
    html = (
        "<!DOCTYPE html><html><head><title>T</title><style>p{}</style>"
        "<script>alert('x')</script></head><body><!-- a comment --><p>Fish &amp; chips"
        "</p><div>one<br>two</div><ul><li>a</li><li>b</li></ul>caf&eacute; &#8364;5"
        "</body></html>"
    )
    assert strip_tags(html) == "Fish & chips\none\ntwo\na\nb\ncafé €5"


@pytest.mark.parametrize(
    "html, text",
    [
        ("<head><title>Subject</title><body>text", "text"),  # </head> never comes
        ("before <b unterminated", "before"),
        ("a <!-- never closed", "a"),
        ("<SCRIPT>x()</SCRIPT>shown", "shown"),
        ("x < y and y > z", "x z"),
        ("", ""),
    ],
)
def test_the_stripper_on_broken_html(html: str, text: str) -> None:
    assert strip_tags(html) == text


@pytest.mark.parametrize(
    "html",
    ["<" * 1_000_000, "<!--" * 250_000, "<a>" * 300_000, "<script>" * 100_000, "&amp;" * 200_000],
)
def test_the_stripper_is_linear(html: str) -> None:
    started = time.thread_time()  # CPU time of this thread: the same on a busy machine
    strip_tags(html)
    assert time.thread_time() - started < 5


def test_visible_length_counts_no_white_space() -> None:
    assert visible_length(" a b\n\tc\xa0 ") == 3
