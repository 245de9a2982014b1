"""Splitting a ticket on SQLite and PostgreSQL, through the real processing path: a proven
staff member's `#split` in an answer to a notification, what moves and what stays, where
the answer goes, later mail, deadlines, refusals, a forged staff sender, and the command
line. Outbound mail stays in the outbox."""

from __future__ import annotations

import io
import json
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from sqlalchemy import select

from mailbridge.cli import merge as merge_cli
from mailbridge.cli import tickets as reports
from mailbridge.db import queries
from mailbridge.db.models import (
    Article,
    AttachmentRecord,
    InboundMessage,
    Outbox,
    Ticket,
    TicketParticipant,
)
from mailbridge.errors import MailbridgeError
from mailbridge.tickets.split import SplitRefused
from tests.support.builders import mail
from tests.support.sla_world import START, H, World, text_of
from tests.support.staff_world import (
    ADA,
    ALICE,
    BEA,
    articles_of,
    event,
    event_types,
    staff_answer,
    world,
)

pytestmark = pytest.mark.db

__all__ = ["world"]  # the fixture these tests use

SCANNER = "And a second thing: the scanner jams on every page.\n"


def scanner_mail() -> bytes:
    """Ada's second mail, in the same thread (an answer to her first), about another
    problem, with a photo."""
    msg = EmailMessage()
    msg["From"], msg["To"] = f"Ada <{ADA}>", "support@shop.example"
    msg["Subject"] = "Re: [#1000] Scanner jams"
    msg["Message-ID"] = "<b1@customer.example>"
    msg["In-Reply-To"] = msg["References"] = "<a1@customer.example>"
    msg["Date"] = format_datetime(START)
    msg.set_content(SCANNER)
    msg.add_attachment(b"\xff\xd8\xff jam", maintype="image", subtype="jpeg", filename="jam.jpg")
    return msg.as_bytes()


def two_problems(world: World) -> None:
    """#1000: Ada's printer at START; two hours later, in the same thread, her scanner.
    The ticket has a tag and a participant."""
    world.receive(mail(f"Ada <{ADA}>", "Printer on fire", message_id="<a1@customer.example>"))
    world.advance(2 * H)
    world.receive(scanner_mail())
    with world.session() as session:
        ticket = world.ticket(1000)
        queries.add_ticket_tags(session, ticket.id, ["hardware"], world.now)
        session.add(
            TicketParticipant(
                ticket_id=ticket.id,
                address="carl@customer.example",
                name="Carl",
                added_at=world.now,
                added_by=ADA,
            )
        )


def notification(world: World, index: int) -> Outbox:
    return world.mails("notification")[index]


def ticket_count(world: World) -> int:
    with world.app.sessions() as session:
        return len(session.scalars(select(Ticket)).all())


def cli_split(world: World, number: int, article: int) -> str:
    out = io.StringIO()
    merge_cli.split(world.app, number, article, out)
    return out.getvalue()


# --- by mail -------------------------------------------------------------------------------------


def test_split_by_mail_moves_the_second_problem_and_answers_it_there(world: World) -> None:
    two_problems(world)
    scanner = articles_of(world, 1000)[1]
    world.advance(H)
    world.receive(
        staff_answer(
            world,
            1000,
            "#split\n\nHello Ada, about the scanner: clean it.",
            answered=notification(world, 1),
        )
    )

    old, new = world.ticket(1000), world.ticket(1001)
    assert [a.message_id for a in articles_of(world, 1000)] == ["a1@customer.example"]
    moved = articles_of(world, 1001)
    assert [a.id for a in moved][0] == scanner.id
    assert [(a.direction, a.author_kind) for a in moved] == [("in", "customer"), ("out", "staff")]
    with world.app.sessions() as session:
        photo = session.scalars(select(AttachmentRecord)).one()
        assert session.get_one(Article, photo.article_id).ticket_id == new.id
        delivered = session.get_one(InboundMessage, scanner.inbound_message_id)
        assert delivered.ticket_id == new.id, "a second delivery finds it where it is"
    # The new ticket: Ada's, about the scanner, its deadlines from the scanner mail.
    assert (new.requester_address, new.requester_name) == (ADA, "Ada")
    assert new.subject == "Scanner jams" and new.mailbox == old.mailbox
    assert (new.queue, new.priority, new.sla_policy) == (old.queue, old.priority, old.sla_policy)
    assert new.created_at == START + 2 * H
    assert new.first_response_due_at == START + 2 * H + 8 * H
    assert new.first_responded_at == START + 3 * H and new.status == "waiting"
    # Tags and participants copied, not moved.
    with world.app.sessions() as session:
        assert queries.ticket_tags(session, new.id) == ["hardware"]
        assert queries.ticket_tags(session, old.id) == ["hardware"]
    assert "carl@customer.example" in queries_participants(world, 1001)
    assert "carl@customer.example" in queries_participants(world, 1000)
    # The answer reached Ada with the new ticket's tag, in the scanner's thread.
    (relayed,) = world.mails("reply")
    subject, body = text_of(relayed)
    assert "[#1001]" in subject and "Scanner jams" in subject
    assert "clean it" in body and "#split" not in body
    assert relayed.ticket_id == new.id and relayed.envelope_to[0] == ADA
    assert "carl@customer.example" in relayed.envelope_to
    assert "In-Reply-To: <b1@customer.example>" in relayed.raw.decode()
    # The old ticket still waits for its first answer, on the printer.
    assert old.status == "new" and old.first_responded_at is None
    assert old.first_response_due_at == START + 8 * H and old.next_escalation_at == START + 8 * H
    into, came = event(world, 1000, "split_into"), event(world, 1001, "split_from")
    assert into.data["into"] == 1001 and into.data["articles"] == [scanner.id]
    assert (into.data["by"], into.data["via"]) == (ALICE, "mail")
    assert came.data["source"] == 1000 and came.data["articles"] == [scanner.id]
    assert "staff_reply" in event_types(world, 1001)
    assert "staff_reply" not in event_types(world, 1000)


def queries_participants(world: World, number: int) -> set[str]:
    with world.app.sessions() as session:
        rows = session.scalars(
            select(TicketParticipant).where(TicketParticipant.ticket_id == world.ticket(number).id)
        )
        return {row.address for row in rows if row.removed_at is None}


def test_later_customer_mail_follows_each_thread(world: World) -> None:
    two_problems(world)
    world.receive(
        staff_answer(world, 1000, "#split\n\nHello Ada, clean it.", answered=notification(world, 1))
    )
    (relayed,) = world.mails("reply")

    world.receive(
        mail(
            f"Ada <{ADA}>",
            "Re: Scanner jams",
            "Still jamming.",
            in_reply_to="<b1@customer.example>",
        )
    )
    world.receive(
        mail(
            f"Ada <{ADA}>",
            "Re: [#1001] Scanner jams",
            "Cleaned, works.",
            in_reply_to=f"<{relayed.message_id}>",
        )
    )
    world.receive(
        mail(
            f"Ada <{ADA}>",
            "Re: Printer on fire",
            "Printer still burning.",
            in_reply_to="<a1@customer.example>",
        )
    )
    assert ticket_count(world) == 2
    texts = [a.text_body.strip() for a in articles_of(world, 1001)]
    assert texts[-2:] == ["Still jamming.", "Cleaned, works."]
    assert articles_of(world, 1000)[-1].text_body.strip() == "Printer still burning."
    assert world.ticket(1001).status == "open"


def test_a_split_with_no_text_relays_nothing(world: World) -> None:
    two_problems(world)
    world.receive(
        staff_answer(world, 1000, "#split\n#priority high", answered=notification(world, 1))
    )
    assert world.mails("reply") == []
    new = world.ticket(1001)
    assert new.status == "new" and new.priority == "high"
    assert world.ticket(1000).priority == "normal", "the rest of the reply is the new ticket's"
    assert new.next_escalation_at == START + 2 * H + 8 * H


def test_the_old_ticket_waits_again_when_what_it_keeps_was_answered(world: World) -> None:
    world.receive(mail(f"Ada <{ADA}>", "Printer on fire", message_id="<a1@customer.example>"))
    world.advance(H)
    world.receive(
        staff_answer(world, 1000, "Hello Ada, please unplug it.", answered=notification(world, 0))
    )
    assert world.ticket(1000).status == "waiting"
    world.advance(H)
    world.receive(scanner_mail())  # opens the ticket again: the lead would be told
    reopened = world.ticket(1000)
    assert reopened.status == "open" and reopened.waiting_since is None
    world.advance(H)
    world.receive(staff_answer(world, 1000, "#split", answered=notification(world, 1)))

    old = world.ticket(1000)
    assert old.status == "waiting" and old.waiting_since == START + 3 * H
    assert old.next_escalation_at is None, "nothing escalates for the message that moved"
    new = world.ticket(1001)
    assert new.status == "new" and new.first_responded_at is None
    assert new.next_escalation_at == START + 2 * H + 8 * H
    world.at(10 * H)
    assert world.sweep() == 1
    assert [e.ticket_id for e in world.events("escalated")] == [new.id]


def test_a_split_answering_the_first_message_or_no_notification_is_refused(
    world: World,
) -> None:
    two_problems(world)
    refusals = [
        (
            staff_answer(world, 1000, "#split\n\nHello.", answered=notification(world, 0)),
            "is the first of ticket",
        ),
        (staff_answer(world, 1000, "#split\n\nHello."), "answers no notification of ours"),
        (
            staff_answer(
                world, 1000, "#split\n#merge 1000\n\nHello.", answered=notification(world, 1)
            ),
            "#split and #merge together",
        ),
    ]
    for raw, error in refusals:
        world.receive(raw)
        refused = event(world, 1000, "staff_commands_refused")
        assert any(error in e for e in refused.data["errors"]), refused.data
    assert ticket_count(world) == 1 and world.mails("reply") == []
    assert len(articles_of(world, 1000)) == 2
    assert len(world.mails("staff_error")) == 3


def test_a_notification_of_another_ticket_names_no_article_here(world: World) -> None:
    two_problems(world)
    world.receive(mail(f"Bea <{BEA}>", "Other", message_id="<c1@customer.example>"))
    beas = notification(world, 2)
    assert beas.ticket_id == world.ticket(1001).id
    world.receive(staff_answer(world, 1000, "#split\n\nHello.", answered=beas))
    refused = event(world, 1000, "staff_commands_refused")
    assert any("is not on ticket #1000" in e for e in refused.data["errors"])
    assert ticket_count(world) == 2


def test_a_forged_staff_sender_cannot_split(world: World) -> None:
    two_problems(world)
    world.receive(
        staff_answer(world, 1000, "#split\n\nSplit.", answered=notification(world, 1), token=False)
    )
    world.receive(
        mail(
            f"Alice <{ALICE}>",
            "Re: [#1000] Scanner jams",
            "#split\n",
            in_reply_to=f"<{notification(world, 1).message_id}>",
        )
    )
    assert ticket_count(world) == 1
    assert "split_into" not in event_types(world, 1000)
    assert world.mails("reply") == []
    assert all(a.author_kind != "staff" for a in articles_of(world, 1000))


# --- from the command line ------------------------------------------------------------------------


def test_split_from_the_command_line_and_show(world: World) -> None:
    two_problems(world)
    first, scanner = articles_of(world, 1000)
    world.advance(H)
    with pytest.raises(SplitRefused, match="is the first of ticket #1000"):
        cli_split(world, 1000, first.id)
    with pytest.raises(SplitRefused, match="article 4242 is not on ticket #1000"):
        cli_split(world, 1000, 4242)
    with pytest.raises(MailbridgeError, match="no ticket #4242"):
        cli_split(world, 4242, scanner.id)

    said = cli_split(world, 1000, scanner.id)

    assert (
        said == f"ticket #1000 split: article {scanner.id} and 0 later moved to new ticket #1001\n"
    )
    came = event(world, 1001, "split_from")
    assert (came.data["by"], came.data["via"]) == ("command line", "command line")
    with pytest.raises(SplitRefused, match=f"article {scanner.id} is not on ticket #1000"):
        cli_split(world, 1000, scanner.id)
    reports.show_ticket(world.app, 1000, True, shown := io.StringIO())
    old = json.loads(shown.getvalue())
    assert (old["split_from"], old["split_into"]) == (None, [1001])
    reports.show_ticket(world.app, 1001, True, shown := io.StringIO())
    new = json.loads(shown.getvalue())
    assert (new["split_from"], new["split_into"]) == (1000, [])
    assert [a["id"] for a in new["articles"]] == [scanner.id]
    reports.show_ticket(world.app, 1001, False, shown := io.StringIO())
    assert "split_from: #1000" in shown.getvalue()
    reports.show_ticket(world.app, 1000, False, shown := io.StringIO())
    assert "split_into: #1001" in shown.getvalue()


def test_a_staff_article_is_no_place_to_split(world: World) -> None:
    two_problems(world)
    world.receive(staff_answer(world, 1000, "Hello Ada, noted.", answered=notification(world, 1)))
    staff = articles_of(world, 1000)[-1]
    assert staff.author_kind == "staff"
    with pytest.raises(SplitRefused, match="is not a customer's message"):
        cli_split(world, 1000, staff.id)


def test_a_split_answer_that_missed_newer_mail_splits_and_is_held_on_the_new_ticket(
    world: World,
) -> None:
    two_problems(world)
    world.advance(H)
    world.receive(
        mail(
            f"Ada <{ADA}>",
            "Re: Scanner jams",
            "It jams on photos too.",
            message_id="<b2@customer.example>",
            in_reply_to="<b1@customer.example>",
        )
    )
    world.receive(
        staff_answer(world, 1000, "#split\n\nHello Ada, clean it.", answered=notification(world, 1))
    )

    new = world.ticket(1001)
    assert [a.message_id for a in articles_of(world, 1000)] == ["a1@customer.example"]
    kinds = [(a.kind, a.author_kind) for a in articles_of(world, 1001)]
    assert kinds == [("customer", "customer"), ("customer", "customer"), ("draft", "staff")]
    assert world.mails("reply") == []
    (told,) = world.mails("collision")
    assert told.ticket_id == new.id
    held = event(world, 1001, "reply_held")
    assert held.data["commands"] == [], "the split is done; it is not replayed"

    world.receive(staff_answer(world, 1001, "#send", answered=told))
    (relayed,) = world.mails("reply")
    assert "[#1001]" in text_of(relayed)[0] and "clean it" in text_of(relayed)[1]
    assert ticket_count(world) == 2
