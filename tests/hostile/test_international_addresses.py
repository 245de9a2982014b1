"""Customers with internationalised addresses (RFC 6531/6532: a UTF-8 local part, a UTF-8
domain) in From or Reply-To are customers like any other: a ticket, and an acknowledgement
through a server that offers SMTPUTF8. Through one that does not, the acknowledgement fails
for good with the reason, and the ticket says why none went out. Nothing is quarantined."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from tests.hostile.conftest import World, make_world
from tests.support.builders import mail

pytestmark = pytest.mark.integration

# These tests read the customer's words in the acknowledgement: its full form, as an
# authenticated sender gets it (tests/hostile/test_acks.py covers the minimal one).
WORLD_SECTIONS = {"tickets": {"ack_unauthenticated": "full"}}

# (the sender's headers, the address answers go to)
SENDERS = [
    ("From: José Müller <josé@exämple.de>", "josé@exämple.de"),
    ("From: 用户@例子.广告", "用户@例子.广告"),
    (
        "From: Carla <carla@customer.example>\r\nReply-To: Carla Ødegård <cårla@exämple.de>",
        "cårla@exämple.de",
    ),
]
INTERNATIONAL = [address for _, address in SENDERS]


def utf8_mail(sender_headers: str, number: int) -> bytes:
    """A mail as an RFC 6532 client writes it: UTF-8 in the headers, unencoded."""
    return (
        f"{sender_headers}\r\nTo: support@shop.example\r\nSubject: Ordine 55-19{number}\r\n"
        f"Message-ID: <intl{number}@customer.example>\r\n"
        "Date: Mon, 23 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
        "\r\nBuongiorno, l'ordine non è ancora arrivato.\r\n"
    ).encode()


def deliver_all(world: World) -> None:
    world.deliver(
        *(utf8_mail(headers, n) for n, (headers, _) in enumerate(SENDERS)),
        mail("Bob <bob@customer.example>", "Where is my order?"),
    )
    world.run()


@pytest.fixture
def utf8_world(
    tmp_path: Path, database_url: str, imap_server: EmbeddedImapServer
) -> Iterator[World]:
    """The world, with an SMTP server that offers SMTPUTF8."""
    with SmtpSink(smtputf8=True) as sink:
        made = make_world(tmp_path, database_url, imap_server, sink, **WORLD_SECTIONS)
        yield made
        made.app.close()


def assert_tickets_for_everyone(world: World) -> None:
    assert [(m.state, m.last_error) for m in world.inbound()] == [("processed", None)] * 4
    assert [t.requester_address for t in world.tickets()] == [
        *INTERNATIONAL,
        "bob@customer.example",
    ]
    assert len(world.sent_to("team@shop.example")) == 4  # notifications need no SMTPUTF8


def test_through_a_server_with_smtputf8_they_are_acknowledged(utf8_world: World) -> None:
    deliver_all(utf8_world)

    assert_tickets_for_everyone(utf8_world)
    for address in INTERNATIONAL:
        (ack,) = utf8_world.sent_to(address)
        assert ack.recipients == (address,)
        assert "SMTPUTF8" in ack.mail_options
        head = ack.raw.partition(b"\r\n\r\n")[0].split(b"\r\n")
        (to,) = [line for line in head if line.startswith(b"To: ")]
        assert to.rstrip(b">").endswith(address.encode())  # RFC 6532: UTF-8, as it is
        assert any(line.startswith(b"Subject: Re: [#10") for line in head)
    (plain,) = utf8_world.sent_to("bob@customer.example")
    assert "SMTPUTF8" not in plain.mail_options and plain.raw.isascii()
    assert {row.state for row in utf8_world.outbox()} == {"sent"}


def test_without_smtputf8_the_acknowledgement_fails_and_the_ticket_says_why(
    world: World,
) -> None:
    deliver_all(world)
    world.run()  # a second pass retries nothing and quarantines nothing

    assert_tickets_for_everyone(world)
    assert len(world.sent_to("bob@customer.example")) == 1
    for number, address in enumerate(INTERNATIONAL, start=1000):
        assert world.sent_to(address) == []
        (ack,) = [row for row in world.outbox("ack") if row.envelope_to == [address]]
        assert ack.state == "failed" and ack.attempts == 1
        reason = (
            f"the mail needs SMTPUTF8 (RFC 6531) for {address}, and the server does not offer it"
        )
        assert ack.last_error is not None and reason in ack.last_error
        (failed,) = [e for e in world.events(number) if e.type == "mail_failed"]
        assert failed.data["kind"] == "ack" and failed.data["outbox_id"] == ack.id
        assert reason in failed.data["reason"]
