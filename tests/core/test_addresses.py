"""Address headers by RFC 5322's grammar: the addr-spec is the address, never the display
name; on plain values, hostile ones included."""

from __future__ import annotations

import gc
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbridge.core.addresses import Mailbox, parse_address_list

pytestmark = pytest.mark.unit


def mailboxes(value: str) -> list[tuple[str, str]]:
    return [(m.name, m.address) for m in parse_address_list(value).mailboxes]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"Smith, John" <John@Example.com>', [("Smith, John", "john@example.com")]),
        ('"O\'Brien \\"Pat\\"" <pat@example.com>', [('O\'Brien "Pat"', "pat@example.com")]),
        (
            "Team: ann@example.com, bob@example.com;, dee@example.com (Dee Dee)",
            [("", "ann@example.com"), ("", "bob@example.com"), ("Dee Dee", "dee@example.com")],
        ),
        ("=?utf-8?B?w4lsb2RpZQ==?= <elodie@example.fr>", [("Élodie", "elodie@example.fr")]),
        ("undisclosed-recipients:;", []),
        (
            "Pete(A \\) chap) <pete(his account)@silly.test(his host)>",
            [("Pete", "pete@silly.test")],
        ),
        ("<@relay.example:bob@example.com>", [("", "bob@example.com")]),
        ("Some One <one@foo.bar<mailto:one@foo.bar>>", [("Some One", "one@foo.bar")]),
        ("jdoe@test   . example", [("", "jdoe@test.example")]),
        ("Big Bug bb@bug.com", [("Big Bug", "bb@bug.com")]),
        ("a@x.example b@y.example", [("", "a@x.example"), ("", "b@y.example")]),
        ("MAILER-DAEMON (Mail Delivery System)", [("Mail Delivery System", "")]),
        ('"john doe"@example.com', [("", '"john doe"@example.com')]),
        ("Jöhn <jdöe@mächine.example>", [("Jöhn", "jdöe@mächine.example")]),
        ("bob@example.com.", [("", "bob@example.com")]),
        ("<Undisclosed-Recipient:@mailman.enron.com;>", []),
    ],
)
def test_real_world_address_lists(value: str, expected: list[tuple[str, str]]) -> None:
    assert mailboxes(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        '"victim@shop.example" <eve@evil.example>',
        "victim@shop.example <eve@evil.example>",
        "=?utf-8?q?victim=40shop.example?= <eve@evil.example>",
        "=?utf-8?b?PHZpY3RpbUBzaG9wLmV4YW1wbGU+?= <eve@evil.example>",  # "<victim@…>"
        '"victim@shop.example <eve@evil.example>',  # unbalanced quote
        "eve@evil.example (victim@shop.example)",
        "eve@evil.example (<victim@shop.example>)",
        '"=?utf-8?q?=3Cvictim=40shop.example=3E?=" <eve@evil.example>',
    ],
)
def test_the_address_never_comes_from_the_display_name(value: str) -> None:
    found = parse_address_list(value).mailboxes
    assert found[0].address == "eve@evil.example"
    assert all(m.address != "victim@shop.example" for m in found)


def test_display_names_lose_control_characters_and_are_bounded() -> None:
    [mailbox] = parse_address_list(
        '"Ada\\x00\u202e Lovelace\r\n' + "x" * 5000 + '" <ada@x.example>'
    ).mailboxes
    assert mailbox.address == "ada@x.example"
    assert mailbox.name.startswith("Ada") and "\x00" not in mailbox.name
    assert "\u202e" not in mailbox.name and len(mailbox.name) <= 1000


def test_raw_utf8_bytes_are_read_as_utf8_and_encoded_words_only_in_names() -> None:
    raw = "Zoë <zoë@exämple.de>".encode().decode("utf-8", "surrogateescape")
    assert parse_address_list(raw).mailboxes == (Mailbox("Zoë", "zoë@exämple.de"),)
    # an encoded word in an addr-spec is no text to decode: the address stays as written
    assert mailboxes("=?utf-8?q?a=40b.example?=@c.example") == [
        ("", "=?utf-8?q?a=40b.example?=@c.example")
    ]


def test_defects_say_what_was_odd_and_the_count_is_bounded() -> None:
    assert parse_address_list('"open <a@b.example>').defects == ("unterminated quoted string",)
    many = parse_address_list(", ".join(f"u{i}@x.example" for i in range(3000)))
    assert len(many.mailboxes) == 1000 and any("more than 1000" in d for d in many.defects)


@pytest.mark.parametrize("unit", ['"', "a", "a.", "(", "<", "a@", "@", ",", "=?", "\\(", "a "])
def test_work_grows_linearly_with_the_header(unit: str) -> None:
    def cost(size: int) -> float:
        value = unit * (size // len(unit))
        best = float("inf")
        for _ in range(5):  # CPU time, best of five, no collections: only the parser's work
            gc.collect()
            gc.disable()
            start = time.thread_time()
            parse_address_list(value)
            best = min(best, time.thread_time() - start)
            gc.enable()
        return best

    small, large = cost(6_000), cost(60_000)
    assert large < small * 30 + 0.01, (unit, small, large)


# --- property-based: any phrase, the angle address wins -------------------------------------

_PHRASE = st.lists(
    st.sampled_from(list('ab@.<>"(),;:\\= ?é\x00') + ["=?utf-8?q?", "?=", "x@y.example"]),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(_PHRASE)
def test_fuzz_whatever_the_phrase_says_the_angle_address_is_the_address(phrase: str) -> None:
    quoted = '"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"'
    found = parse_address_list(f"{quoted} <eve@evil.example>").mailboxes
    assert found and found[0].address == "eve@evil.example"
    assert all(m.address in ("eve@evil.example", "") for m in found)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_fuzz_any_text_parses_without_error(text: str) -> None:
    result = parse_address_list(text)
    assert all(" " not in m.address for m in result.mailboxes)
