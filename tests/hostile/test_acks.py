"""Acknowledgements are not a spam cannon: what an attacker who writes a victim's address
into From or Reply-To can make mailbridge send there, and how often; and which automated
mail gets no acknowledgement at all. Through the real daemon, on both databases."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import event

from mailbridge.adapters.templates import default_templates_dir
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import ReceivedMail, SmtpSink
from mailbridge.service.metrics import DatabaseCollector
from tests.hostile.conftest import MX, World, make_world
from tests.support.builders import mail

pytestmark = pytest.mark.integration

VICTIM = "victim@victim.example"
TEAM = "team@shop.example"
PITCH = "Cheap pills at pills.example"  # the attacker's text
AUTHENTICATED = f"{MX}; dkim=pass header.d=customer.example header.s=s1"


Factory = Callable[..., World]


@pytest.fixture
def configured(
    tmp_path: Path, database_url: str, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> Iterator[Factory]:
    """make_world with extra configuration sections; the worlds are closed afterwards."""
    made: list[World] = []

    def factory(**sections: object) -> World:
        made.append(make_world(tmp_path, database_url, imap_server, smtp_sink, **sections))
        return made[-1]

    yield factory
    for world in made:
        world.app.close()


def withheld(world: World, number: int) -> dict[str, object]:
    (event,) = [e for e in world.events(number) if e.type == "ack_suppressed"]
    return event.data


def metric(world: World, limit: str) -> float:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(DatabaseCollector(world.app, min_reuse=0.0))
    name = f'mailbridge_acknowledgements_suppressed_total{{limit="{limit}"}}'
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def text_of(received: ReceivedMail) -> str:
    return "\n".join(
        part.get_content()
        for part in received.message.walk()
        if part.get_content_type() in ("text/plain", "text/html")
    )


# --- hourly limits ---------------------------------------------------------------------------


def test_a_flood_to_one_domain_stops_at_the_domain_limit(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Twenty-two forged senders at one domain: twenty acknowledgements (the default), one
    log line, every ticket still tracked and every mail shown to the team."""
    world.deliver(*(mail(f"u{n}@victim.example", f"Order {n}", PITCH) for n in range(22)))
    with caplog.at_level(logging.WARNING, logger="mailbridge.inbound.acknowledge"):
        world.run()
    tickets = world.tickets()
    acked = [
        m for m in world.smtp.received if any(r.endswith("@victim.example") for r in m.recipients)
    ]
    assert len(tickets) == 22 and len(acked) == 20
    for number in (1020, 1021):
        assert withheld(world, number)["limit"] == "domain"
        assert withheld(world, number)["key"] == "victim.example"
    assert all(t.first_response_due_at is not None for t in tickets)
    assert len(world.sent_to(TEAM)) == 22
    logged = [r for r in caplog.records if "acknowledgements withheld" in r.getMessage()]
    assert len(logged) == 1 and "domain victim.example" in logged[0].getMessage()
    assert metric(world, "domain") == 2 and metric(world, "address") == 0

    world.clock.advance(timedelta(hours=1, minutes=1))  # a new hour: acknowledged again
    world.deliver(mail("late@victim.example", "Order 99", "Hello"))
    world.run()
    assert len(world.sent_to("late@victim.example")) == 1


def test_the_mailbox_limit_holds_across_domains(configured: Factory) -> None:
    world = configured(tickets={"ack_mailbox_limit_per_hour": 3})
    world.deliver(*(mail(f"a@d{n}.example", f"Order {n}", "Hello") for n in range(4)))
    world.run()
    assert len(world.outbox("ack")) == 3
    assert withheld(world, 1003)["limit"] == "mailbox"
    assert withheld(world, 1003)["key"] == "support"
    assert world.ticket(1003).first_response_due_at is not None
    assert len(world.sent_to(TEAM)) == 4
    assert metric(world, "mailbox") == 1


def test_the_address_limit_is_named_on_the_ticket(world: World) -> None:
    world.deliver(*(mail(VICTIM, f"Order {n}", PITCH) for n in range(6)))
    world.run()
    assert len(world.sent_to(VICTIM)) == 5
    assert withheld(world, 1005)["limit"] == "address"
    assert metric(world, "address") == 1


# --- the unauthenticated case ----------------------------------------------------------------


def assert_minimal(received: ReceivedMail, tag: str = "[#1000]") -> None:
    """Nothing the sender chose: not their words, subject, display name or ids."""
    raw = received.raw.decode(errors="replace")
    assert "pills" not in raw.lower() and "Mallory" not in raw and "Victim Name" not in raw
    assert tag in str(received.message["Subject"])
    assert received.message["In-Reply-To"] is None and received.message["References"] is None
    assert str(received.message["To"]) == VICTIM
    assert "If you did not write to us" in text_of(received)


@pytest.mark.parametrize(
    "headers",
    [
        {
            "From": "Mallory <mallory@customer.example>",
            "Reply-To": f"Victim Name <{VICTIM}>",
            "Authentication-Results": AUTHENTICATED,
        },  # authenticated, but not the victim
        {"From": f"Victim Name <{VICTIM}>"},  # no Authentication-Results at all
        {
            "From": f"Victim Name <{VICTIM}>",  # from an MTA we do not trust
            "Authentication-Results": "mx.evil.example; dkim=pass header.d=victim.example",
        },
        {
            "From": f"Victim Name <{VICTIM}>",  # the trusted MTA, but nothing passed
            "Authentication-Results": f"{MX}; dkim=fail header.d=victim.example; spf=softfail "
            "smtp.mailfrom=victim.example",
        },
    ],
    ids=["reply-to", "no-results", "untrusted-mta", "nothing-passed"],
)
def test_an_unauthenticated_address_gets_only_the_ticket_number(
    world: World, headers: dict[str, str]
) -> None:
    headers = dict(headers)  # the parameter is shared by both databases' runs
    sender = headers.pop("From")
    world.deliver(
        mail(
            sender,
            f"Re: {PITCH}",
            f"{PITCH}\nhttps://pills.example/buy\n",
            message_id="<pitch@pills.example>",
            headers=headers,
        )
    )
    world.run()
    (ack,) = world.sent_to(VICTIM)
    assert_minimal(ack)
    assert world.outbox("ack")[0].envelope_to == [VICTIM]
    (notice,) = world.sent_to(TEAM)  # staff still see everything
    assert PITCH in text_of(notice)
    queued = [e for e in world.events(1000) if e.type == "ack_queued"]
    assert queued[0].data["form"] == "minimal"


def test_an_authenticated_sender_gets_the_full_acknowledgement(world: World) -> None:
    world.deliver(
        mail(
            "Ada Customer <ada@customer.example>",
            "Printer on fire",
            headers={"Authentication-Results": AUTHENTICATED},
        )
    )
    world.deliver(mail(f"Victim Name <{VICTIM}>", PITCH, PITCH))
    world.run()
    (full,) = world.sent_to("ada@customer.example")
    assert "Printer on fire" in str(full.message["Subject"])
    assert "my printer is on fire" in text_of(full) and "Ada Customer" in text_of(full)
    assert full.message["In-Reply-To"] is not None
    assert_minimal(world.sent_to(VICTIM)[0], "[#1001]")


def test_the_victim_answering_the_minimal_acknowledgement_joins_the_ticket(world: World) -> None:
    world.deliver(mail(VICTIM, PITCH, PITCH))
    world.run()
    (ack,) = world.sent_to(VICTIM)
    assert_minimal(ack)
    world.deliver(
        mail(
            VICTIM,
            f"Re: {ack.message['Subject']}",
            "I never wrote to you.",
            in_reply_to=str(ack.message["Message-ID"]),
        )
    )
    world.run()
    assert len(world.tickets()) == 1
    assert [a.text_body.strip() for a in world.articles(1000)][-1] == "I never wrote to you."


def test_full_acknowledgements_for_everyone_can_be_chosen(configured: Factory) -> None:
    world = configured(tickets={"ack_unauthenticated": "full"})
    world.deliver(mail(f"Victim Name <{VICTIM}>", PITCH, PITCH))
    world.run()
    (ack,) = world.sent_to(VICTIM)
    assert PITCH in text_of(ack) and "Victim Name" in text_of(ack)


def test_a_custom_template_cannot_show_what_the_sender_wrote(
    configured: Factory, tmp_path: Path
) -> None:
    """An operator's template that prints every value still prints nothing of the mail."""
    folder = tmp_path / "templates"
    shutil.copytree(default_templates_dir(), folder)
    (folder / "en" / "acknowledgement.html.j2").unlink()
    (folder / "en" / "acknowledgement.txt.j2").write_text(
        "Subject: Re: {{ ticket_tag }} {{ subject }}\n\n"
        "Dear {{ requester_name }}, about {{ subject }}:\n{{ excerpt }}\n"
        "{% for item in faq %}{{ item.title }} {{ item.answer }}{% endfor %}\n"
        "{{ digest }} {{ reply_text }} {{ event }} {{ staff_name }}\n",
        encoding="utf-8",
    )
    world = configured(templates={"dir": str(folder)})
    world.deliver(mail(f"Victim Name <{VICTIM}>", PITCH, f"{PITCH}\n"))
    world.run()
    (ack,) = world.sent_to(VICTIM)
    raw = ack.raw.decode(errors="replace")
    assert "pills" not in raw.lower() and "Victim Name" not in raw
    assert "[#1000]" in str(ack.message["Subject"])


# --- mail that gets no acknowledgement -------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    ["AW: Automatische Antwort: Ihre Bestellung", "R: Risposta automatica: ordine 12",
     "RE: Automatic reply: Invoice", "SV: Automatic reply: Invoice",
     "Fwd: Out of Office: back on Monday", "Auto: Invoice 12",
     "Re: Réponse automatique : votre commande", "Re: Respuesta automática: pedido",
     "Nicht im Büro: Urlaub bis 3.5.", "Fuori sede fino a lunedì"],
)  # fmt: skip
def test_an_out_of_office_without_headers_gets_no_acknowledgement(
    world: World, subject: str
) -> None:
    world.deliver(mail(VICTIM, subject, "I am away until Monday."))
    world.run()
    assert world.sent_to(VICTIM) == []
    (ticket,) = world.tickets()
    assert withheld(world, ticket.number or 0)["check"] == "automated"


def test_automated_mail_costs_no_bounce_or_ledger_look_up(world: World) -> None:
    # A flood of out-of-office or bulk mail must not buy a query per limit per mail.
    asked: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        lowered = statement.lower()
        if lowered.startswith("select") and (
            "from acknowledgement" in lowered or "from address_state" in lowered
        ):
            asked.append(statement)

    event.listen(world.app.engine, "before_cursor_execute", note)
    try:
        world.deliver(mail("away@customer.example", "Out of Office: back on Monday", "Away."))
        world.run()
        assert asked == []
        world.deliver(mail("ada@customer.example", "Printer on fire", "Help."))
        world.run()
        # The same path for a customer asks the bounce state and the hourly limits, in
        # one statement per batch each: on SQLite the three limits together; PostgreSQL
        # reads the batch's senders and their domains before it applies the first
        # message, then the mailbox's, and also asks which domains are full before it
        # locks them.
        ledger = [q.lower() for q in asked if "from acknowledgement" in q.lower()]
        assert any("from address_state" in q.lower() for q in asked)
        for key in ("address", "domain", "mailbox"):
            asking = (f"acknowledgement.{key} = ", f"acknowledgement.{key} in (")
            assert any(a in q for q in ledger for a in asking), key
        assert len(ledger) <= 3, ledger
    finally:
        event.remove(world.app.engine, "before_cursor_execute", note)


def test_a_read_receipt_gets_none_and_asking_for_one_is_not_automated(world: World) -> None:
    receipt = (
        f"From: {VICTIM}\nTo: support@shop.example\nSubject: Read: Printer on fire\n"
        "Date: Mon, 23 Nov 2026 09:00:00 +0000\nMessage-ID: <mdn1@victim.example>\n"
        "MIME-Version: 1.0\nContent-Type: multipart/report; "
        "report-type=disposition-notification; boundary=B\n\n"
        "--B\nContent-Type: text/plain\n\nYour message was displayed.\n"
        "--B\nContent-Type: message/disposition-notification\n\n"
        "Reporting-UA: mua.victim.example\nFinal-Recipient: rfc822;victim@victim.example\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\n--B--\n"
    ).encode()
    asking = mail(
        "ada@customer.example",
        "Printer on fire",
        headers={"Disposition-Notification-To": "ada@customer.example"},
    )
    world.deliver(receipt, asking)
    world.run()
    assert world.sent_to(VICTIM) == []
    assert "read_receipt" in withheld(world, 1000)["rules"]  # type: ignore[operator]
    assert len(world.sent_to("ada@customer.example")) == 1


def test_a_null_return_path_gets_none_unless_written_below_the_mtas(world: World) -> None:
    null = b"Return-Path: <>\n" + mail(VICTIM, "Your message", "Thanks, noted.")
    forged = b"Return-Path: <ada@customer.example>\nReturn-Path: <>\n" + mail(
        "ada@customer.example", "Printer on fire"
    )
    world.deliver(null, forged)
    world.run()
    assert world.sent_to(VICTIM) == []
    assert withheld(world, 1000)["rules"] == ["null_return_path"]
    assert len(world.sent_to("ada@customer.example")) == 1


def test_precedence_bulk_from_a_person_is_tracked_but_not_acknowledged(world: World) -> None:
    world.deliver(mail("ada@customer.example", "Printer on fire", headers={"Precedence": "bulk"}))
    world.deliver(
        mail(
            "news@shop-news.example",
            "Our November offers",
            headers={"Precedence": "bulk", "List-Id": "<offers.shop-news.example>"},
        )
    )
    world.run()
    person, newsletter = world.tickets()
    assert world.sent_to("ada@customer.example") == []
    assert withheld(world, person.number or 0) == {
        "check": "classified",
        "reason": "looks like bulk mail (precedence_bulk)",
        "rules": ["precedence_bulk"],
    }
    assert person.first_response_due_at is not None and person.next_escalation_at is not None
    (notice,) = world.sent_to(TEAM)
    assert "Printer on fire" in str(notice.message["Subject"])
    assert newsletter.first_response_due_at is None
    assert world.sent_to("news@shop-news.example") == []
