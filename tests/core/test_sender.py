"""The sender of a mail whose From names no address: Sender, Reply-To, then the topmost
Return-Path; a domain-less mailer daemon keeps its name. On plain values
(tests/core/test_parse_sender.py has them on mail)."""

from __future__ import annotations

import pytest

from mailbridge.core.addresses import Mailbox
from mailbridge.core.message import Address
from mailbridge.core.sender import choose_sender

pytestmark = pytest.mark.unit

SUE = Mailbox("Sue Sender", "sue@customer.example")
RITA = Mailbox("Rita", "rita@customer.example")
PATH = Mailbox("", "bounces@customer.example")
NAME_ONLY = Mailbox("Ada Customer", "")
DAEMON = Mailbox("Mail Delivery Subsystem", "", "mailer-daemon")


def test_from_with_an_address_is_the_sender_whatever_else_the_mail_names() -> None:
    ada = Mailbox("Ada", "ada@customer.example")
    choice = choose_sender([ada], {"sender": [SUE], "reply-to": [RITA], "return-path": [PATH]})
    assert (choice.sender, choice.header, choice.defects) == (
        Address("Ada", "ada@customer.example"),
        "from",
        (),
    )


@pytest.mark.parametrize(
    ("fallbacks", "header", "expected"),
    [
        (
            {"sender": [SUE], "reply-to": [RITA], "return-path": [PATH]},
            "sender",
            Address("Sue Sender", "sue@customer.example"),
        ),
        (
            {"sender": [], "reply-to": [RITA], "return-path": [PATH]},
            "reply-to",
            Address("Rita", "rita@customer.example"),
        ),
        (
            {"reply-to": [NAME_ONLY, RITA], "return-path": [PATH]},
            "reply-to",
            Address("Rita", "rita@customer.example"),
        ),
        (
            {"sender": [NAME_ONLY], "return-path": [PATH]},
            "return-path",
            Address("", "bounces@customer.example"),
        ),
    ],
)
def test_without_from_the_fallbacks_are_asked_in_order(
    fallbacks: dict[str, list[Mailbox]], header: str, expected: Address
) -> None:
    choice = choose_sender(None, fallbacks)
    assert (choice.sender, choice.header) == (expected, header)
    title = {"sender": "Sender", "reply-to": "Reply-To", "return-path": "Return-Path"}[header]
    assert choice.defects == (f"missing From: sender taken from {title}",)


def test_a_from_without_address_lends_its_display_name_to_a_nameless_fallback() -> None:
    choice = choose_sender([NAME_ONLY], {"return-path": [PATH]})
    assert choice.sender == Address("Ada Customer", "bounces@customer.example")
    assert choice.defects == ("From has no address: sender taken from Return-Path",)


def test_a_later_from_mailbox_with_an_address_beats_the_fallbacks() -> None:
    choice = choose_sender([NAME_ONLY, RITA], {"sender": [SUE]})
    assert (choice.sender, choice.header) == (Address("Rita", "rita@customer.example"), "from")


@pytest.mark.parametrize(
    "fallbacks", [{}, {"sender": [], "reply-to": [], "return-path": []}, {"sender": [NAME_ONLY]}]
)
def test_no_address_anywhere_is_no_sender(fallbacks: dict[str, list[Mailbox]]) -> None:
    choice = choose_sender(None, fallbacks)
    assert (choice.sender, choice.header, choice.defects) == (None, "", ("missing From",))
    named = choose_sender([NAME_ONLY], fallbacks)
    assert (named.sender, named.header) == (Address("Ada Customer", ""), "")


def test_a_domainless_mailer_daemon_keeps_its_name() -> None:
    choice = choose_sender([DAEMON], {"reply-to": [RITA], "return-path": [PATH]})
    assert choice.sender == Address("Mail Delivery Subsystem", "mailer-daemon")
    assert choice.header == "from"


def test_another_domainless_name_is_no_sender() -> None:
    choice = choose_sender([Mailbox("", "", "root")], {"return-path": [PATH]})
    assert (choice.sender, choice.header) == (
        Address("", "bounces@customer.example"),
        "return-path",
    )
