"""Collision check of staff replies, end to end: mail appended to the embedded IMAP server,
one real daemon pass (fetch, process, send), what reached the SMTP sink and the database
read back; on SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
import io
import itertools
import threading
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from mailbridge.adapters.imap import ImapMailbox, imap_settings
from mailbridge.app import App, build_app
from mailbridge.cli.tickets import show_ticket
from mailbridge.clock import FrozenClock
from mailbridge.db.models import Outbox
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import ReceivedMail, SmtpSink
from mailbridge.inbound import process
from mailbridge.inbound.fetch import fetch_mailbox
from mailbridge.inbound.process import ProcessReport, process_pending
from tests.hostile.conftest import STAFF, START, World, make_world
from tests.support.builders import mail

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CUSTOMER = "ada@customer.example"
ALICE, BOB, TEAM = "alice@shop.example", "bob@shop.example", "team@shop.example"
ALICE_TEXT = "Hello Ada, a new printer is on its way."
BOB_TEXT = "Hello Ada, please send us the serial number."
_ids = itertools.count()


@pytest.fixture
def world(
    tmp_path: Path, database_url: str, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> Iterator[World]:
    made = make_world(tmp_path, database_url, imap_server, smtp_sink)
    yield made
    made.app.close()


def answer(
    answered: ReceivedMail,
    sender: str,
    text: str,
    *,
    to: str | None = None,
    threaded: bool = True,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A staff member's answer to one of our mails, from their own client: to its Reply-To
    (the token), threaded to it, the mail quoted below."""
    quoted = "\n".join("> " + line for line in body(answered).splitlines())
    return mail(
        sender,
        "Re: " + str(answered.message["Subject"]),
        f"{text}\n\nOn Mon, 23 Nov 2026, Shop Support wrote:\n{quoted}\n",
        to=to or answered.message["Reply-To"].addresses[0].addr_spec,
        message_id=f"<s{next(_ids)}@shop.example>",
        in_reply_to=str(answered.message["Message-ID"]) if threaded else None,
        headers=headers,
    )


def body(received: ReceivedMail) -> str:
    part = received.message.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def open_ticket(world: World) -> ReceivedMail:
    world.deliver(mail(f"Ada <{CUSTOMER}>", "Printer on fire", message_id="<p1@customer.example>"))
    world.run()
    (notice,) = world.sent_to(TEAM)
    return notice


def replies_to_customer(world: World) -> list[str]:
    return [body(m) for m in world.sent_to(CUSTOMER) if m.message["Auto-Submitted"] is None]


def collision_mails(world: World, address: str) -> list[ReceivedMail]:
    return [m for m in world.sent_to(address) if "ticket" in body(m) and "#send" in body(m)]


def drafts(world: World) -> list[tuple[str, str, bool]]:
    return [
        (a.kind, a.from_address, a.internal)
        for a in world.articles(1000)
        if a.kind.startswith("draft")
    ]


def data_of(world: World, event_type: str) -> list[dict[str, object]]:
    return [e.data for e in world.events(1000) if e.type == event_type]


def both_answer(world: World, *, passes: int = 1) -> None:
    """Alice and Bob answer the notification of a new ticket: both answers fetched together
    in one pass, or (passes=2) Alice's relayed in a pass before Bob's arrives."""
    notice = open_ticket(world)
    world.deliver(answer(notice, f"Alice <{ALICE}>", ALICE_TEXT))
    if passes == 2:
        world.run()
    world.deliver(answer(notice, f"Bob <{BOB}>", BOB_TEXT))
    world.run()


def held_for_bob(world: World, *, passes: int = 1) -> ReceivedMail:
    """Bob's answer held after Alice's (see both_answer); the collision mail he got."""
    both_answer(world, passes=passes)
    (told,) = collision_mails(world, BOB)
    return told


# --- two staff members, one notification -------------------------------------------------------


def test_two_answers_in_one_fetch_batch_relay_the_first_and_hold_the_second_until_send(
    world: World,
) -> None:
    notice = open_ticket(world)
    world.deliver(
        answer(notice, f"Alice <{ALICE}>", ALICE_TEXT),
        answer(notice, f"Bob <{BOB}>", "#priority high\n" + BOB_TEXT),
    )
    world.run()  # one pass: both fetched together, processed in order

    assert [ALICE_TEXT in text for text in replies_to_customer(world)] == [True]
    assert world.ticket(1000).priority == "normal", "a held reply's commands wait"
    assert drafts(world) == [("draft", BOB, True)]
    (held,) = data_of(world, "reply_held")
    alice_reply = next(a for a in world.articles(1000) if a.from_address == ALICE)
    assert held["by"] == BOB and held["via"] == "mail"
    assert held["newer"] == [alice_reply.id] and held["commands"] == [["priority", "high"]]
    (told,) = collision_mails(world, BOB)
    assert "Held" in str(told.message["Subject"]) and ALICE_TEXT in body(told)
    assert BOB_TEXT in body(told)
    assert told.message["In-Reply-To"] is not None
    assert told.message["Reply-To"].addresses[0].addr_spec.startswith("support+t1000-")
    assert told.message["Auto-Submitted"] == "auto-replied"

    world.deliver(answer(told, f"Bob <{BOB}>", "#send"))
    world.run()

    texts = replies_to_customer(world)
    assert len(texts) == 2 and BOB_TEXT in texts[1] and "#priority" not in texts[1]
    assert world.ticket(1000).priority == "high", "the draft's commands applied on #send"
    assert drafts(world) == [("draft_sent", BOB, True)]
    (sent,) = data_of(world, "draft_sent")
    assert sent["by"] == BOB and sent["via"] == "mail"
    relayed = next(a for a in world.articles(1000) if a.id == sent["article_id"])
    assert (relayed.kind, relayed.internal, relayed.text_body) == ("reply", False, BOB_TEXT)


def test_send_relays_the_attachments_of_the_held_reply(world: World) -> None:
    notice = open_ticket(world)
    invoice = b"%PDF-1.4 invoice " * 200
    held = email.message_from_bytes(
        answer(notice, f"Bob <{BOB}>", BOB_TEXT), policy=email.policy.default
    )
    assert isinstance(held, EmailMessage)
    held.add_attachment(invoice, maintype="application", subtype="pdf", filename="invoice.pdf")
    world.deliver(answer(notice, f"Alice <{ALICE}>", ALICE_TEXT), held.as_bytes())
    world.run()
    (told,) = collision_mails(world, BOB)

    world.deliver(answer(told, f"Bob <{BOB}>", "#send"))
    world.run()

    relayed = [m for m in world.sent_to(CUSTOMER) if BOB_TEXT in body(m)]
    assert len(relayed) == 1
    (attached,) = relayed[0].message.iter_attachments()
    assert attached.get_filename() == "invoice.pdf" and attached.get_content() == invoice


def test_drop_discards_the_held_reply_and_keeps_it_on_record(world: World) -> None:
    told = held_for_bob(world, passes=2)

    world.deliver(answer(told, f"Bob <{BOB}>", "#drop"))
    world.run()

    assert len(replies_to_customer(world)) == 1
    assert drafts(world) == [("draft_dropped", BOB, True)]
    assert data_of(world, "draft_dropped")[0]["by"] == BOB
    shown = io.StringIO()
    assert show_ticket(world.app, 1000, False, shown) == 0
    assert "--- out staff draft_dropped (internal) " in shown.getvalue()
    assert BOB_TEXT in shown.getvalue() and "draft_dropped {" in shown.getvalue()
    # Nothing is held any more: a second #drop is refused with a reason.
    world.deliver(answer(told, f"Bob <{BOB}>", "#send"))
    world.run()
    refused = data_of(world, "staff_commands_refused")
    assert "no held reply of yours" in str(refused[-1]["errors"])
    assert len(replies_to_customer(world)) == 1


def test_a_new_answer_to_the_collision_mail_is_relayed_and_replaces_the_draft(
    world: World,
) -> None:
    told = held_for_bob(world, passes=2)

    world.deliver(answer(told, f"Bob <{BOB}>", "Ada, Alice is right; ignore my question."))
    world.run()

    texts = replies_to_customer(world)
    assert len(texts) == 2 and "Alice is right" in texts[1]
    assert drafts(world) == [("draft_replaced", BOB, True)]


# --- the customer wrote again --------------------------------------------------------------------


def test_an_answer_to_a_notification_the_customer_has_written_past_is_held(
    world: World,
) -> None:
    notice = open_ticket(world)
    world.deliver(
        mail(
            f"Ada <{CUSTOMER}>",
            "Re: Printer on fire",
            "Never mind, the fire is out. It was the toaster.",
            in_reply_to="<p1@customer.example>",
        )
    )
    world.run()
    world.deliver(answer(notice, f"Alice <{ALICE}>", "#close\n" + ALICE_TEXT))
    world.run()

    assert replies_to_customer(world) == []
    assert world.ticket(1000).status != "closed"
    (told,) = collision_mails(world, ALICE)
    assert "It was the toaster" in body(told) and "Ada" in body(told)
    # Ada writes once more before Alice sends: #send is checked against what the
    # collision mail showed, and held again with the news.
    world.deliver(
        mail(
            f"Ada <{CUSTOMER}>",
            "Re: Printer on fire",
            "Oh, and the cat did it.",
            in_reply_to="<p1@customer.example>",
        )
    )
    world.run()
    world.deliver(answer(told, f"Alice <{ALICE}>", "#send"))
    world.run()
    assert replies_to_customer(world) == []
    again = collision_mails(world, ALICE)[-1]
    assert "the cat did it" in body(again) and "toaster" not in body(again)
    assert [d["again"] for d in data_of(world, "reply_held")] == [False, True]
    assert drafts(world) == [("draft", ALICE, True)]

    world.deliver(answer(again, f"Alice <{ALICE}>", "#send"))
    world.run()
    (text,) = replies_to_customer(world)
    assert ALICE_TEXT in text
    assert world.ticket(1000).status == "closed"


def test_a_note_is_never_held(world: World) -> None:
    notice = open_ticket(world)
    world.deliver(answer(notice, f"Alice <{ALICE}>", ALICE_TEXT))
    world.run()
    world.deliver(answer(notice, f"Bob <{BOB}>", "#note\nI had the same idea."))
    world.run()
    assert drafts(world) == [] and data_of(world, "reply_held") == []
    assert [a.kind for a in world.articles(1000)][-1] == "note"


# --- modes ---------------------------------------------------------------------------------------


@pytest.fixture
def both_answered(
    tmp_path: Path, database_url: str, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> Iterator[Callable[[str], World]]:
    """A world with [staff] collision set to the mode given, where Alice's and Bob's answers
    to one notification arrive together and are run in one pass."""
    made: list[World] = []

    def answered_in(mode: str) -> World:
        world = make_world(
            tmp_path, database_url, imap_server, smtp_sink, staff={**STAFF, "collision": mode}
        )
        made.append(world)
        both_answer(world)
        return world

    yield answered_in
    for world in made:
        world.app.close()


def test_warn_mode_relays_and_tells_what_changed(
    both_answered: Callable[[str], World],
) -> None:
    world = both_answered("warn")
    texts = replies_to_customer(world)
    assert len(texts) == 2 and BOB_TEXT in texts[1]
    (told,) = [m for m in world.sent_to(BOB) if "Sent, but" in str(m.message["Subject"])]
    assert ALICE_TEXT in body(told) and "#send" not in body(told)
    (warned,) = data_of(world, "collision_warned")
    assert warned["by"] == BOB and warned["via"] == "mail" and len(warned["newer"]) == 1
    assert drafts(world) == []


def test_off_mode_relays_as_before(both_answered: Callable[[str], World]) -> None:
    world = both_answered("off")
    assert len(replies_to_customer(world)) == 2
    assert world.sent_to(BOB) == []
    types = set(world.event_types(1000))
    assert not types & {"reply_held", "collision_warned", "collision_unchecked"}


def test_an_answer_that_names_no_notification_is_relayed_and_recorded_unchecked(
    world: World,
) -> None:
    notice = open_ticket(world)
    world.deliver(answer(notice, f"Alice <{ALICE}>", ALICE_TEXT))
    world.run()
    proven = {"Authentication-Results": "mx.shop.example; dkim=pass header.d=shop.example"}
    world.deliver(
        answer(
            notice,
            f"Bob <{BOB}>",
            BOB_TEXT,
            to="support@shop.example",
            threaded=False,
            headers=proven,
        )
    )
    world.run()
    assert len(replies_to_customer(world)) == 2
    (unchecked,) = data_of(world, "collision_unchecked")
    assert unchecked["by"] == BOB and "answers no notification" in str(unchecked["reason"])


# --- who may send a draft -----------------------------------------------------------------------


def test_send_by_another_staff_member_is_refused(world: World) -> None:
    told = held_for_bob(world)
    proven = {"Authentication-Results": "mx.shop.example; dkim=pass header.d=shop.example"}
    world.deliver(
        answer(told, f"Alice <{ALICE}>", "#send", to="support@shop.example", headers=proven)
    )
    world.run()

    assert len(replies_to_customer(world)) == 1
    assert drafts(world) == [("draft", BOB, True)]
    errors = str(data_of(world, "staff_commands_refused")[-1]["errors"])
    assert "no held reply of yours" in errors and BOB in errors
    assert any("no held reply of yours" in body(m) for m in world.sent_to(ALICE))


def test_a_forged_send_does_nothing(world: World) -> None:
    told = held_for_bob(world)
    # Bob's From, threaded to the collision mail, but to the plain address: no proof.
    world.deliver(answer(told, f"Bob <{BOB}>", "#send", to="support@shop.example"))
    world.run()

    assert len(replies_to_customer(world)) == 1
    assert drafts(world) == [("draft", BOB, True)]
    assert data_of(world, "draft_sent") == []
    assert "staff_unproven" in world.event_types(1000)


# --- two instances ------------------------------------------------------------------------------


def test_two_instances_processing_at_once_relay_one_answer_and_hold_the_other(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "BATCH", 1)  # one message per turn
    notice = open_ticket(world)
    other = build_app(world.app.config, clock=FrozenClock(START))
    try:
        world.deliver(
            answer(notice, f"Alice <{ALICE}>", ALICE_TEXT),
            answer(notice, f"Bob <{BOB}>", BOB_TEXT),
        )
        fetch_once(world.app)
        reports: list[ProcessReport] = []
        barrier = threading.Barrier(2)

        def processor(app: App) -> None:
            barrier.wait()
            reports.append(process_pending(app))

        threads = [threading.Thread(target=processor, args=(a,)) for a in (world.app, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
    finally:
        other.close()

    # One mailbox is one turn on PostgreSQL too: whichever instance holds it takes the
    # answers one by one, the other leaves it to it; either way one is relayed.
    assert sum(r.processed for r in reports) == 2 and sum(r.failed for r in reports) == 0
    with world.app.sessions() as session:
        replies = session.scalars(select(Outbox).where(Outbox.kind == "reply")).all()
    assert len(replies) == 1
    assert len(data_of(world, "reply_held")) == 1
    assert len(drafts(world)) == 1


def fetch_once(app: App) -> None:
    """Store what the IMAP folder holds, as the daemon's poller does, without processing."""
    mailbox = app.config.mailbox[0]
    with ImapMailbox(imap_settings(mailbox)) as conn:
        fetch_mailbox(app, mailbox, conn)
