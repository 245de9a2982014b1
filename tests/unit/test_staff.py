"""Staff proof, reply tokens, commands by mail and signature stripping, on plain values."""

from __future__ import annotations

import re

import pytest

from mailbridge.core.staff import (
    AddressToken,
    Command,
    authentication_proof,
    find_token,
    is_staff_address,
    parse_commands,
    reply_address,
    reply_token,
    strip_signature,
    token_valid,
)

SECRET = b"correct horse battery staple"
OWN = ("support@example.com", "billing@example.com")


# --- tokens ------------------------------------------------------------------------------


def test_reply_address_round_trips_through_find_token() -> None:
    address = reply_address("support@example.com", 1042, SECRET)
    assert re.fullmatch(r"support\+t1042-[a-z2-7]{12}@example\.com", address)
    found = find_token(["someone@else.org", address], OWN)
    assert found == AddressToken(1042, address.split("-")[1].split("@")[0], address)
    assert token_valid(SECRET, found)


def test_token_is_bound_to_its_ticket_and_secret() -> None:
    assert reply_token(SECRET, 1042) != reply_token(SECRET, 1043)
    assert reply_token(SECRET, 1042) != reply_token(b"another secret", 1042)
    stolen = reply_token(SECRET, 1042)
    assert not token_valid(SECRET, AddressToken(1043, stolen, "x"))
    assert not token_valid(b"another secret", AddressToken(1042, stolen, "x"))


def test_find_token_is_case_insensitive_and_needs_one_of_our_addresses() -> None:
    token = reply_token(SECRET, 7)
    upper = f"Support+T7-{token.upper()}@Example.COM"
    found = find_token([upper], OWN)
    assert found is not None and token_valid(SECRET, found)
    assert find_token([f"support+t7-{token}@evil.example.net"], OWN) is None
    assert find_token(["support@example.com", "support+news@example.com"], OWN) is None
    assert find_token([f"billing+t7-{token}@example.com"], OWN) == AddressToken(
        7, token, f"billing+t7-{token}@example.com")


# --- staff addresses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("alice@example.com", True),
        ("ALICE@Example.com", True),
        ("bob@staff.example.org", True),
        ("bob@evil-staff.example.org", False),
        ("bob@sub.staff.example.org", False),
        ("mallory@example.net", False),
        ("", False),
        ("not-an-address", False),
    ],
)
def test_staff_addresses_and_domains(address: str, expected: bool) -> None:
    assert is_staff_address(address, ["alice@example.com"], ["staff.example.org"]) is expected


# --- Authentication-Results --------------------------------------------------------------------


def test_dkim_pass_aligned_with_the_sender_is_proof() -> None:
    header = ("mx.example.com; dkim=pass (2048-bit key) header.d=example.com "
              "header.s=s1 header.b=abc; spf=fail smtp.mailfrom=other.net")
    assert authentication_proof([header], "mx.example.com", "alice@example.com") == "dkim"


def test_spf_pass_with_relaxed_alignment_is_proof() -> None:
    header = "mx.example.com; spf=pass smtp.mailfrom=bounces@mail.example.com"
    assert authentication_proof([header], "mx.example.com", "alice@example.com") == "spf"


def test_dmarc_pass_is_proof() -> None:
    header = "mx.example.com 1; dmarc=pass (p=reject) header.from=example.com"
    assert authentication_proof([header], "MX.example.com", "alice@example.com") == "dmarc"


@pytest.mark.parametrize(
    "header",
    [
        # a pass for somebody else's domain proves nothing about ours
        "mx.example.com; dkim=pass header.d=attacker.net; spf=pass smtp.mailfrom=attacker.net",
        # failures and neutral results
        "mx.example.com; dkim=fail header.d=example.com; spf=softfail smtp.mailfrom=example.com",
        "mx.example.com; none",
        # the right result from the wrong server
        "mx.attacker.net; dkim=pass header.d=example.com",
        # a look-alike domain is not aligned
        "mx.example.com; dkim=pass header.d=notexample.com",
        # the pass is only inside a comment
        "mx.example.com; dkim=fail (dkim=pass header.d=example.com) header.d=example.com",
        "",
    ],
)
def test_no_proof(header: str) -> None:
    assert authentication_proof([header], "mx.example.com", "alice@example.com") is None


def test_only_the_first_header_of_the_trusted_server_counts() -> None:
    ours = "mx.example.com; dkim=fail header.d=example.com"
    forged_below = "mx.example.com; dkim=pass header.d=example.com"
    assert authentication_proof([ours, forged_below], "mx.example.com",
                                "alice@example.com") is None
    other_hop = "relay.elsewhere.net; dkim=fail header.d=example.com"
    assert authentication_proof([other_hop, forged_below], "mx.example.com",
                                "alice@example.com") == "dkim"


def test_no_trusted_server_configured_means_no_proof() -> None:
    header = "mx.example.com; dkim=pass header.d=example.com"
    assert authentication_proof([header], "", "alice@example.com") is None


# --- commands --------------------------------------------------------------------------------


def test_commands_before_the_text_are_read_and_removed() -> None:
    message = parse_commands("#priority HIGH\n#assign bob@example.com\n\nHello Mario,\n"
                             "the refund is on its way.\n#close at the end is text")
    assert message.commands == (Command("priority", "high"),
                                Command("assign", "bob@example.com"))
    assert message.errors == ()
    assert message.text == "Hello Mario,\nthe refund is on its way.\n#close at the end is text"


def test_tag_lines_take_several_names_each_and_collect_them_once() -> None:
    message = parse_commands("#tag VIP, refund\n#untag unhappy\n#tag vip billing,\nThanks")
    assert message.tags("tag") == ("vip", "refund", "billing")
    assert message.tags("untag") == ("unhappy",)
    assert message.errors == () and message.text == "Thanks"


def test_note_keeps_the_rest_of_its_line_as_text() -> None:
    message = parse_commands("#note customer called, wants a callback\nsecond line")
    assert message.has("note")
    assert message.text == "customer called, wants a callback\nsecond line"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("#frobnicate\nHi", "unknown command"),
        ("#priority\nHi", "needs an argument"),
        ("#priority soonish\nHi", "expected one of low, normal, high, urgent"),
        ("#close now please\nHi", "takes no argument"),
        ("#assign bob\nHi", "expected an e-mail address"),
        ("#template ../../etc/passwd\nHi", "expected a template name"),
        ("#tag\nHi", "needs an argument"),
        ("#untag not/a/tag\nHi", "expected tag names"),
    ],
)
def test_command_errors_name_the_line_and_the_problem(text: str, error: str) -> None:
    message = parse_commands(text)
    assert len(message.errors) == 1
    assert message.errors[0].startswith(text.splitlines()[0])
    assert error in message.errors[0]
    assert message.text == "Hi"


def test_last_argument_wins_and_me_is_a_valid_assignee() -> None:
    message = parse_commands("#queue sales\n#queue billing\n#assign me\n#resolve")
    assert message.argument("queue") == "billing"
    assert message.argument("assign") == "me"
    assert message.has("resolve") and not message.has("close")
    assert message.text == ""


def test_text_without_commands_is_untouched() -> None:
    text = "Hi,\n\n#1042 is the ticket you mean?"
    message = parse_commands(text)
    assert message.commands == () and message.errors == ()
    assert message.text == text


# --- signatures --------------------------------------------------------------------------------


def test_signature_is_cut_at_the_delimiter_or_a_configured_pattern() -> None:
    text = "The refund is on its way.\n\n-- \nAlice Rossi\nExample Support"
    assert strip_signature(text, []) == "The refund is on its way."
    text = "Done.\n\nAlice Rossi | Support lead\n+39 02 1234"
    patterns = [re.compile(r"^Alice Rossi\b")]
    assert strip_signature(text, patterns) == "Done."
    assert strip_signature("No signature here.\n", patterns) == "No signature here."
