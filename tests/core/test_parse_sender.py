"""parse_message finds the sender of a mail whose From names no address (core.sender), and
a domain-less mailer daemon's bounce stays a bounce."""

from __future__ import annotations

import pytest

from mailbridge.core.classify import Identity, classify
from mailbridge.core.message import Address
from mailbridge.core.parse import parse_message

pytestmark = pytest.mark.unit


def raw(*headers: str, body: str = "Hello, my order has not arrived.") -> bytes:
    lines = [
        "To: support@shop.example",
        "Subject: Order 4711",
        "Message-ID: <m1@c.example>",
        "Date: Mon, 23 Nov 2026 09:00:00 +0000",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


@pytest.mark.parametrize(
    ("headers", "expected", "header"),
    [
        (
            (
                "Sender: Sue <sue@customer.example>",
                "Return-Path: <rp@customer.example>",
                "Cc: root, bob@shop.example",
            ),
            Address("Sue", "sue@customer.example"),
            "sender",
        ),
        (
            ("From: Ada Customer", "Reply-To: <ada@customer.example>"),
            Address("", "ada@customer.example"),
            "reply-to",
        ),
        (
            ("From: <>", "Return-Path: <rp@customer.example>"),
            Address("", "rp@customer.example"),
            "return-path",
        ),
        (
            ("Return-Path: <top@customer.example>", "Return-Path: <lower@customer.example>"),
            Address("", "top@customer.example"),
            "return-path",
        ),
    ],
)
def test_parse_takes_the_sender_from_the_fallback_headers(
    headers: tuple[str, ...], expected: Address, header: str
) -> None:
    msg = parse_message(raw(*headers))
    assert msg.from_ == expected and msg.sender_header == header
    assert all(a.address for a in msg.cc)  # a domain-less name is no one to copy
    assert any("sender taken from" in defect for defect in msg.defects)


def test_a_null_topmost_return_path_is_no_address_and_hides_lower_ones() -> None:
    msg = parse_message(raw("Return-Path: <>", "Return-Path: <lower@customer.example>"))
    assert msg.from_ is None and msg.sender_header == ""
    assert "missing From" in msg.defects


def test_a_mail_naming_no_sender_has_none() -> None:
    msg = parse_message(raw())
    assert msg.from_ is None and msg.sender_header == ""


@pytest.mark.parametrize(
    "sender",
    [
        "Mail Delivery Subsystem <MAILER-DAEMON>",
        "MAILER-DAEMON",
        "MAILER-DAEMON (Mail Delivery System)",
    ],
)
def test_a_domainless_mailer_daemon_bounce_is_a_bounce(sender: str) -> None:
    body = (
        "This is the mail system at host mx.customer.example.\r\n\r\nI'm sorry to have to "
        "inform you that your message could not be delivered to one or more recipients."
    )
    msg = parse_message(
        raw(
            f"From: {sender}",
            "Return-Path: <someone@customer.example>",
            "Reply-To: <someone@customer.example>",
            body=body,
        )
    )
    assert msg.from_ is not None and msg.from_.address == "mailer-daemon"
    assert msg.sender_header == "from"
    verdict = classify(msg, Identity())
    assert verdict.kind == "bounce" and "daemon_sender_with_dsn" in verdict.rules
    assert not verdict.acknowledgeable


def test_a_domainless_mailer_daemon_without_a_report_is_still_automated() -> None:
    msg = parse_message(raw("From: Mail Delivery Subsystem <MAILER-DAEMON>"))
    verdict = classify(msg, Identity())
    assert verdict.kind == "auto_reply" and not verdict.acknowledgeable
