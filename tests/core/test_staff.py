"""Staff proof, reply tokens, commands by mail and signature stripping, on plain values."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from mailbridge.core.message import Address
from mailbridge.core.staff import (
    TEAM,
    AddressToken,
    Command,
    argument_problems,
    check_token,
    find_token,
    is_staff_address,
    parse_commands,
    reply_address,
    requester_address,
    staff_member,
    strip_signature,
)

pytestmark = pytest.mark.unit

SECRET = b"correct horse battery staple, 32+"
OWN = ("support@example.com", "billing@example.com")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ALICE, BOB = "alice@example.com", "bob@example.com"
MEMBERS = (ALICE, BOB)


def address_for(
    audience: str,
    number: int = 1042,
    expires: datetime = NOW,
    secret: bytes = SECRET,
    base: str = "support@example.com",
) -> str:
    return reply_address(
        base, number, secret, audience=audience, expires=expires + timedelta(days=30)
    )


def check(
    address: str, sender: str, now: datetime = NOW, secret: bytes = SECRET
) -> tuple[str | None, str | None]:
    found = find_token([address], OWN)
    assert found is not None
    result = check_token(secret, found, sender, MEMBERS, now)
    return result.audience, result.refusal


# --- tokens ------------------------------------------------------------------------------


def test_reply_address_round_trips_through_find_token() -> None:
    address = address_for(ALICE)
    assert re.fullmatch(r"support\+t1042-[0-9a-z]{1,7}-[a-z2-7]{16}@example\.com", address)
    assert len(address.partition("@")[0]) <= 64  # a local part's limit
    found = find_token(["someone@else.org", address], OWN)
    assert found is not None and found.ticket_number == 1042 and found.address == address
    assert check(address, ALICE) == (ALICE, None)


def test_a_personal_token_serves_only_the_staff_member_it_was_sent_to() -> None:
    address = address_for(ALICE)
    assert check(address, "ALICE@example.com") == (ALICE, None)
    audience, refusal = check(address, BOB)
    assert audience is None and refusal == f"this reply address was not issued to {BOB}"
    assert check(address, "mallory@example.com")[0] is None  # same staff domain: still no


def test_a_team_token_serves_every_listed_member_and_nobody_else() -> None:
    address = address_for(TEAM)
    assert check(address, ALICE) == (TEAM, None)
    assert check(address, BOB) == (TEAM, None)
    audience, refusal = check(address, "carol@example.com")  # at a staff domain, not listed
    assert audience is None and refusal is not None and "not one of the staff" in refusal


def test_a_token_expires_at_the_end_of_its_last_day() -> None:
    address = address_for(ALICE)  # good for 30 days
    assert check(address, ALICE, NOW + timedelta(days=30, hours=14)) == (ALICE, None)
    audience, refusal = check(address, ALICE, NOW + timedelta(days=31, hours=15))
    assert audience is None and refusal is not None and "expired" in refusal


def test_a_token_is_bound_to_its_ticket_expiry_and_secret() -> None:
    address = address_for(ALICE)
    assert check(address.replace("+t1042-", "+t1043-"), ALICE)[0] is None
    assert check(address, ALICE, secret=b"another secret of thirty-two bytes")[0] is None
    number, expiry, mac = address.partition("+")[2].partition("@")[0].split("-")
    later = address.replace(f"-{expiry}-", f"-{int(expiry, 36) + 365:x}-")
    assert check(later, ALICE)[0] is None  # a forged expiry breaks the MAC


def test_an_older_token_form_is_refused_with_a_reason() -> None:
    found = find_token(["support+t1042-k3j5x7q2abcd@example.com"], OWN)
    assert found == AddressToken(1042, "", "k3j5x7q2abcd", "support+t1042-k3j5x7q2abcd@example.com")
    result = check_token(SECRET, found, ALICE, MEMBERS, NOW)
    assert result.audience is None and result.refusal is not None
    assert "older form" in result.refusal


def test_find_token_is_case_insensitive_and_needs_one_of_our_addresses() -> None:
    address = address_for(ALICE)
    local = address.partition("@")[0]
    assert check(address.upper(), ALICE) == (ALICE, None)
    assert find_token([f"{local}@evil.example.net"], OWN) is None
    assert find_token(["support@example.com", "support+news@example.com"], OWN) is None
    billing = address_for(ALICE, base="billing@example.com")
    assert check(billing, ALICE) == (ALICE, None)


def test_staff_member_names_a_configured_address_by_itself_or_its_local_part() -> None:
    assert staff_member("Alice@Example.com", MEMBERS) == ALICE
    assert staff_member("bob", MEMBERS) == BOB
    assert staff_member("mallory@example.com", MEMBERS) is None  # a staff domain is not enough
    assert staff_member("alice", (ALICE, "alice@other.example")) is None  # ambiguous
    assert staff_member("evil@attacker.example", MEMBERS) is None


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


# --- commands --------------------------------------------------------------------------------


def test_commands_before_the_text_are_read_and_removed() -> None:
    message = parse_commands(
        "#priority HIGH\n#assign bob@example.com\n\nHello Mario,\n"
        "the refund is on its way.\n#close at the end is text"
    )
    assert message.commands == (Command("priority", "high"), Command("assign", "bob@example.com"))
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
        ("#assign bob <bob@x.example>\nHi", "expected a staff address or name"),
        ("#template ../../etc/passwd\nHi", "expected a template name"),
        ("#tag\nHi", "needs an argument"),
        ("#untag not/a/tag\nHi", "expected tag names"),
        ("#requester\nHi", "needs an argument"),
        ("#requester ann at example dot com\nHi", "expected one address"),
        ("#requester ann@example.com, bob@example.com\nHi", "expected one address"),
        ("#requester Ann <ann>\nHi", "expected one address"),
        ("#spam blocks\nHi", "expected nothing, or block"),
        ("#notspam really\nHi", "takes no argument"),
    ],
)
def test_command_errors_name_the_line_and_the_problem(text: str, error: str) -> None:
    message = parse_commands(text)
    assert len(message.errors) == 1
    assert message.errors[0].startswith(text.splitlines()[0])
    assert error in message.errors[0]
    assert message.text == "Hi"


def test_requester_takes_one_address_with_or_without_a_name() -> None:
    message = parse_commands("#requester Ann Example <Ann@Example.com>\n\nHello Ann,\nhere.")
    assert message.commands == (Command("requester", "Ann Example <Ann@Example.com>"),)
    assert message.errors == () and message.text == "Hello Ann,\nhere."
    assert requester_address(message.argument("requester") or "") == Address(
        "Ann Example", "ann@example.com"
    )


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("ann@example.com", Address("", "ann@example.com")),
        ('"Doe, Jane" <jane@example.com>', Address("Doe, Jane", "jane@example.com")),
        ("  josé@exämple.de ", Address("", "josé@exämple.de")),
        (
            "=?utf-8?q?Ann=0D=0ABcc=3A_eve=40evil.example?= <ann@example.com>",
            Address("Ann Bcc: eve@evil.example", "ann@example.com"),
        ),  # one line, the name only
        ("", None),
        ("ann", None),
        ("Ann Example", None),
        ("ann@example.com garbage", None),
        ("<ann@example.com> garbage", None),
        ("ann@example.com,bob@example.com", None),
        ("Ann <ann@example.com><bob@example.com>", None),
        ("undisclosed-recipients:;", None),
        ("<>", None),
        ("ann@example.com\r\nBcc: eve@evil.example", None),
        ("a@" + "b" * 600 + ".example", None),
        ("x" * 250 + "@" + "y" * 10 + ".example", None),
    ],
)
def test_requester_address_is_one_mailbox_read_by_the_address_grammar(
    argument: str, expected: Address | None
) -> None:
    assert requester_address(argument) == expected


def test_last_argument_wins_and_me_is_a_valid_assignee() -> None:
    message = parse_commands("#queue sales\n#queue billing\n#assign me\n#resolve")
    assert message.argument("queue") == "billing"
    assert message.argument("assign") == "me"
    assert message.has("resolve") and not message.has("close")
    assert message.text == ""


def test_spam_takes_block_in_any_case_and_notspam_nothing() -> None:
    message = parse_commands("#SPAM Block\n#notspam\n\nPhishing.")
    assert message.errors == ()
    assert message.argument("spam") == "block" and message.has("notspam")
    assert message.text == "Phishing."
    assert parse_commands("#spam").argument("spam") == ""


def test_text_without_commands_is_untouched() -> None:
    text = "Hi,\n\n#1042 is the ticket you mean?"
    message = parse_commands(text)
    assert message.commands == () and message.errors == ()
    assert message.text == text


def test_argument_problems_need_a_staff_assignee_and_a_known_canned_reply() -> None:
    def problems(text: str, canned: frozenset[str] = frozenset({"refund", "invoice"})) -> list[str]:
        return argument_problems(parse_commands(text), MEMBERS, canned)

    assert problems("#assign me\n#assign alice\n#template refund") == []
    assert problems("#assign carol") == [
        f"#assign carol: not a staff member (known: {ALICE}, {BOB})"
    ]
    assert problems("#template welcome") == [
        "#template welcome: no such canned reply (known: invoice, refund)"
    ]
    assert problems("#template welcome", frozenset()) == [
        "#template welcome: no such canned reply (known: none)"
    ]


# --- signatures --------------------------------------------------------------------------------


def test_signature_is_cut_at_the_delimiter_or_a_configured_pattern() -> None:
    text = "The refund is on its way.\n\n-- \nAlice Rossi\nExample Support"
    assert strip_signature(text, []) == "The refund is on its way."
    text = "Done.\n\nAlice Rossi | Support lead\n+39 02 1234"
    patterns = [re.compile(r"^Alice Rossi\b")]
    assert strip_signature(text, patterns) == "Done."
    assert strip_signature("No signature here.\n", patterns) == "No signature here."
