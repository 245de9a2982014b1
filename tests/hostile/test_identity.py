"""Forging staff, or somebody else's ticket: what a hostile sender tries, through the real
daemon on both databases. The ticket must not change, the customer must not be mailed."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from tests.hostile.conftest import MX, World
from tests.hostile.replies import ALICE, CUSTOMER, open_ticket, reply, token_of
from tests.support.builders import mail

pytestmark = pytest.mark.integration


def assert_untouched(world: World, sent_before: int) -> None:
    """Ticket #1000 is as Ada left it, and Ada got nothing more."""
    ticket = world.ticket(1000)
    assert ticket.status == "new" and ticket.priority == "normal" and ticket.assignee is None
    assert ticket.first_responded_at is None
    assert not [a for a in world.articles(1000) if a.author_kind == "staff"]
    assert len(world.sent_to(CUSTOMER)) == sent_before


# --- forged proof ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authentication_results",
    [
        # the MTA copies the attacker's envelope sender into its own, genuine header
        f'{MX}; spf=pass smtp.mailfrom="x;dkim=pass header.d=shop.example x"@evil.example',
        f"{MX}; spf=pass smtp.mailfrom="
        "=?utf-8?q?x=3Bdkim=3Dpass_header.d=3Dshop.example_x?=@evil.example",
        f'{MX}; spf=pass (google.com: domain of "a);dkim=pass header.d=shop.example (b"'
        "@evil.example designates 192.0.2.1 as permitted sender) smtp.mailfrom=evil.example",
        # SPF passing for the staff domain proves the envelope, not the From
        f"{MX}; spf=pass smtp.mailfrom=alice@shop.example",
    ],
    ids=["quoted-local-part", "encoded-word", "gmail-comment", "spf-only"],
)
def test_a_forged_authentication_result_does_not_make_staff(
    world: World, authentication_results: str
) -> None:
    open_ticket(world)
    sent = len(world.sent_to(CUSTOMER))
    world.deliver(
        reply(
            f"Alice <{ALICE}>",
            "#close\n#priority low\nAll sorted, bye.",
            raw_headers={"Authentication-Results": authentication_results},
        )
    )
    world.run()
    assert_untouched(world, sent)
    # a customer's mail like any other: a subject tag from a stranger opens a ticket of its own
    assert [t.number for t in world.tickets()] == [1000, 1001]
    assert "staff_unproven" in world.event_types(1001)


def test_a_real_dkim_pass_still_proves_staff(world: World) -> None:
    notice = open_ticket(world)
    world.deliver(
        reply(
            f"Alice <{ALICE}>",
            "#resolve\nA new printer is on its way.",
            in_reply_to=str(notice.message["Message-ID"]),
            headers={
                "Authentication-Results": f"{MX}; dkim=pass header.d=shop.example header.s=s1"
            },
        )
    )
    world.run()
    assert world.ticket(1000).status == "resolved"
    assert "A new printer is on its way." in world.sent_to(CUSTOMER)[-1].raw.decode()


# --- reply tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize("sender", ["mallory@shop.example", "eve@evil.example"])
def test_a_team_token_is_refused_to_anyone_not_on_the_staff_list(world: World, sender: str) -> None:
    notice = open_ticket(world)
    sent = len(world.sent_to(CUSTOMER))
    world.deliver(reply(sender, "#close\nClosing this one.", to=token_of(notice)))
    world.run()
    assert_untouched(world, sent)
    refused = [e for e in world.events(1000) if e.type == "staff_token_refused"]
    assert len(refused) == 1 and refused[0].data["by"] == sender
    told = world.sent_to(sender)
    assert len(told) == 1 and "Not accepted" in str(told[0].message["Subject"])


def test_an_expired_token_is_refused_with_a_reason(world: World) -> None:
    notice = open_ticket(world)
    sent = len(world.sent_to(CUSTOMER))
    world.clock.advance(timedelta(days=32))
    world.deliver(reply(f"Alice <{ALICE}>", "Sorry for the wait, fixed.", to=token_of(notice)))
    world.run()
    ticket = world.ticket(1000)
    assert ticket.first_responded_at is None and ticket.status != "resolved"
    assert len(world.sent_to(CUSTOMER)) == sent
    told = world.sent_to(ALICE)
    assert len(told) == 1 and "expired" in told[0].raw.decode()


def test_a_personal_token_serves_only_its_assignee(world: World) -> None:
    notice = open_ticket(world)
    world.deliver(reply(f"Alice <{ALICE}>", "#assign bob", to=token_of(notice)))
    world.run()
    assert world.ticket(1000).assignee == "bob@shop.example"
    world.deliver(
        mail(
            f"Ada <{CUSTOMER}>",
            "Re: [#1000] Printer on fire",
            body="Any news?",
            in_reply_to="<p1@customer.example>",
        )
    )
    world.run()
    personal = world.sent_to("bob@shop.example")
    assert len(personal) == 1
    sent = len(world.sent_to(CUSTOMER))
    world.deliver(reply(f"Alice <{ALICE}>", "#close\nDone.", to=token_of(personal[0])))
    world.run()
    assert world.ticket(1000).status != "closed" and len(world.sent_to(CUSTOMER)) == sent
    world.deliver(reply("Bob <bob@shop.example>", "Fixed, Ada.", to=token_of(personal[0])))
    world.run()
    assert world.ticket(1000).first_responded_at is not None
    assert "Fixed, Ada." in world.sent_to(CUSTOMER)[-1].raw.decode()


def test_assign_takes_only_configured_staff(world: World) -> None:
    notice = open_ticket(world)
    world.deliver(reply(f"Alice <{ALICE}>", "#assign eve@evil.example", to=token_of(notice)))
    world.run()
    assert world.ticket(1000).assignee is None
    told = world.sent_to(ALICE)
    assert len(told) == 1 and "not a staff member" in told[0].raw.decode()


# --- one sender address ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw_from",
    [
        b'"alice@shop.example" <eve@evil.example>',
        b"alice@shop.example <eve@evil.example>",
        b"=?utf-8?b?" + base64.b64encode(b"<alice@shop.example>") + b"?= <eve@evil.example>",
        b'"alice@shop.example <eve@evil.example>',  # unbalanced quote
        b"eve@evil.example (alice@shop.example)",
    ],
    ids=["quoted-name", "bare-name", "encoded-name", "unbalanced", "comment"],
)
def test_the_sender_is_never_taken_from_the_display_name(world: World, raw_from: bytes) -> None:
    notice = open_ticket(world)
    sent = len(world.sent_to(CUSTOMER))
    world.deliver(
        reply(
            "placeholder@x.example",
            "#close\nClosed.",
            to=token_of(notice),
            headers={"Authentication-Results": f"{MX}; dkim=pass header.d=shop.example"},
            raw_from=raw_from,
        )
    )
    world.run()
    assert_untouched(world, sent)
    inbound = [
        a for t in world.tickets() for a in world.articles(t.number or 0) if a.direction == "in"
    ]
    assert all(a.from_address != ALICE for a in inbound)


def test_a_forged_from_cannot_resolve_a_ticket_by_its_subject_tag(world: World) -> None:
    open_ticket(world)
    forged = reply(
        f"Ada <{CUSTOMER}>",
        "solved, thanks",
        headers={
            "Authentication-Results": f"{MX}; spf=pass smtp.mailfrom=evil.example; "
            "dkim=pass header.d=evil.example; dmarc=fail header.from="
            "customer.example"
        },
    )
    world.deliver(forged)
    world.run()
    assert world.ticket(1000).status == "new"
    assert "resolved_by_customer" not in world.event_types(1000)


def test_a_stranger_in_the_thread_is_recorded_but_acts_on_nothing(world: World) -> None:
    open_ticket(world)
    ack = world.sent_to(CUSTOMER)[0]
    world.deliver(
        reply(
            "Eve <eve@evil.example>", "solved, thanks", in_reply_to=str(ack.message["Message-ID"])
        )
    )
    world.run()
    ticket = world.ticket(1000)
    assert ticket.status == "new" and ticket.resolved_at is None
    unverified = [e for e in world.events(1000) if e.type == "unverified_sender"]
    assert len(unverified) == 1 and unverified[0].data["address"] == "eve@evil.example"
    assert [a.from_address for a in world.articles(1000)] == [CUSTOMER, "eve@evil.example"]
    warned = world.sent_to("team@shop.example")[-1]
    assert "Unverified mail from" in str(warned.message["Subject"])
    assert len(world.sent_to("eve@evil.example")) == 0  # no acknowledgement either


def test_a_strangers_second_mail_is_as_unverified_as_the_first(world: World) -> None:
    open_ticket(world)
    ack = world.sent_to(CUSTOMER)[0]
    world.deliver(
        reply("Eve <eve@evil.example>", "hello?", in_reply_to=str(ack.message["Message-ID"]))
    )
    world.run()
    # Eve's first mail is on the ticket now; it must not make her one of its people.
    world.deliver(
        reply(
            "Eve <eve@evil.example>", "solved, thanks", in_reply_to=str(ack.message["Message-ID"])
        )
    )
    world.deliver(reply("Eve <eve@evil.example>", "solved, thanks too"))  # the subject tag
    world.run()

    ticket = world.ticket(1000)
    assert ticket.status == "new" and ticket.resolved_at is None
    assert [e.data["address"] for e in world.events(1000) if e.type == "unverified_sender"] == [
        "eve@evil.example"
    ] * 2
    assert len([t for t in world.tickets()]) == 2  # the tagged mail is a ticket of its own
    assert len(world.sent_to("eve@evil.example")) == 1  # that ticket's acknowledgement
