"""Staff say a ticket is spam, or not, on SQLite and PostgreSQL, through the real processing
path: `#spam` withdraws the unsent acknowledgement and notification (the send loop then has
nothing for anyone), `#spam block` puts the sender on the blocklist, `#notspam` gives the
deadlines back and acknowledges late only when no acknowledgement went out, refusals, a
row a sender holds is left alone, and nobody unproven changes anything
(tickets/spam.py, inbound/staff.py)."""

from __future__ import annotations

import argparse
import asyncio
import io
import json

import pytest
from sqlalchemy import select

from mailbridge.adapters.smtp import SmtpSettings
from mailbridge.app import Step
from mailbridge.cli.common import iso
from mailbridge.cli.ticket_spam import run_spam
from mailbridge.cli.tickets import show_ticket
from mailbridge.db.models import Outbox, SenderRule
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.outbound.send import _ReadRows, send_pending
from mailbridge.tickets.sender_lists import sender_lists
from mailbridge.tickets.spam import SpamRefused, mark_spam
from tests.support.builders import mail
from tests.support.sla_world import H, World
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


def ada_writes(world: World) -> None:
    world.receive(mail(f"Ada <{ADA}>", "Cheap pills", message_id="<p1@customer.example>"))


def pending(world: World) -> list[tuple[str, list[str]]]:
    return [(r.kind, r.envelope_to) for r in world.mails() if r.state == "pending"]


def send_to(world: World, sink: SmtpSink) -> None:
    """Run the send loop once against the sink: whatever is still queued goes out."""
    settings = SmtpSettings(host=sink.host, port=sink.port, security="none")
    asyncio.run(send_pending(world.app, settings))


def tickets_command(world: World, action: str, number: int = 1000, block: bool = False) -> str:
    out = io.StringIO()
    args = argparse.Namespace(tickets_command=action, number=number, block=block)
    assert run_spam(args, world.app, out) == 0
    return out.getvalue()


def test_spam_withdraws_the_unsent_ack_and_notification_and_nothing_goes_out(
    world: World, smtp_sink: SmtpSink
) -> None:
    ada_writes(world)
    queued = {row.kind: row.id for row in world.mails()}
    assert pending(world) == [("ack", [ADA]), ("notification", ["team@shop.example"])]
    assert world.ticket().next_escalation_at is not None

    world.advance(H)
    world.receive(staff_answer(world, 1000, "#spam"))

    ticket = world.ticket()
    assert ticket.status == "spam" and ticket.spam_at == world.now
    assert ticket.first_response_due_at is None and ticket.resolution_due_at is None
    assert ticket.next_escalation_at is None
    assert pending(world) == []
    marked = event(world, 1000, "spam")
    assert marked.data["by"] == ALICE and marked.data["via"] == "mail"
    assert sorted(marked.data["withdrawn_outbox_ids"]) == sorted(queued.values())
    assert marked.data["blocked"] is None
    send_to(world, smtp_sink)
    assert smtp_sink.received == []
    # The deadline passes: nobody is paged about spam.
    world.advance(9 * H)
    world.sweep()
    assert world.mails("escalation") == [] and world.mails("sla_warning") == []


def test_words_after_spam_stay_a_note_for_staff(world: World) -> None:
    ada_writes(world)
    world.receive(staff_answer(world, 1000, "#spam\n\nPhishing, do not answer."))
    assert world.ticket().status == "spam"
    assert world.mails("reply") == []
    note = articles_of(world, 1000)[-1]
    assert note.internal and "Phishing" in note.text_body


def test_spam_block_puts_the_address_not_its_domain_on_the_blocklist(world: World) -> None:
    ada_writes(world)
    world.receive(staff_answer(world, 1000, "#spam block"))
    assert world.ticket().status == "spam"
    assert event(world, 1000, "spam").data["blocked"] == ADA
    with world.session() as session:
        allow, block = sender_lists(session, world.app.config)
        rule = session.get_one(SenderRule, ADA)
        assert (rule.kind, rule.created_by, rule.note) == ("block", ALICE, "#spam on ticket #1000")
    assert block == (ADA,) and allow == ()
    (blocked,) = world.events("sender_blocked")
    assert blocked.ticket_id is None and blocked.data["by"] == ALICE
    # Her next new mail is judged by the table: a spam ticket, answered by nobody.
    world.receive(mail(f"Ada <{ADA.upper()}>", "More pills", message_id="<p2@customer.example>"))
    world.receive(mail(f"Bea <{BEA}>", "A real question", message_id="<q1@customer.example>"))
    newest = {t.subject: t.status for t in world.tickets()}
    assert (newest["More pills"], newest["A real question"]) == ("spam", "new")
    assert [to for kind, to in pending(world) if kind == "ack"] == [[BEA]]


def test_a_staff_answer_to_spam_leaves_it_spam_until_notspam(world: World) -> None:
    ada_writes(world)
    world.receive(staff_answer(world, 1000, "#spam"))
    spam_at = world.ticket().spam_at
    world.advance(H)

    world.receive(staff_answer(world, 1000, "Please stop writing to us."))

    ticket = world.ticket()
    assert (ticket.status, ticket.spam_at, ticket.pending_since) == ("spam", spam_at, None)
    assert ticket.next_escalation_at is None  # no waiting cycle, no reminder


def test_ticket_show_says_when_a_ticket_became_spam(world: World) -> None:
    ada_writes(world)
    world.receive(staff_answer(world, 1000, "#spam"))
    marked = world.ticket().spam_at
    assert marked is not None

    shown = io.StringIO()
    assert show_ticket(world.app, 1000, False, shown) == 0
    assert f"  spam_at: {iso(marked)}\n" in shown.getvalue()
    document = io.StringIO()
    show_ticket(world.app, 1000, True, document)
    assert json.loads(document.getvalue())["spam_at"] == iso(marked)

    tickets_command(world, "notspam")
    document = io.StringIO()
    show_ticket(world.app, 1000, True, document)
    assert json.loads(document.getvalue())["spam_at"] is None


def test_notspam_acknowledges_late_when_no_ack_went_out(world: World) -> None:
    ada_writes(world)
    world.receive(staff_answer(world, 1000, "#spam"))
    assert world.mails("ack") == []
    world.advance(2 * H)

    world.receive(staff_answer(world, 1000, "#notspam"))

    ticket = world.ticket()
    assert ticket.status == "new" and ticket.spam_at is None
    assert ticket.first_response_due_at == world.now + 8 * H  # from now, as for a new ticket
    assert ticket.next_escalation_at == world.now + 8 * H  # the lead's step at the deadline
    (ack,) = world.mails("ack")
    assert ack.state == "pending" and ack.created_at == world.now and ack.envelope_to == [ADA]
    types = event_types(world, 1000)
    assert types[types.index("not_spam") + 1] == "ack_queued"
    assert event(world, 1000, "not_spam").data["acknowledged_before"] is False


def test_notspam_does_not_acknowledge_twice(world: World, smtp_sink: SmtpSink) -> None:
    ada_writes(world)
    send_to(world, smtp_sink)  # the acknowledgement went out
    assert [m.recipients for m in smtp_sink.received] == [(ADA,), ("team@shop.example",)]
    world.receive(staff_answer(world, 1000, "#spam"))
    assert event(world, 1000, "spam").data["withdrawn_outbox_ids"] == []

    assert tickets_command(world, "notspam") == "ticket #1000 is new again\n"

    assert len(world.mails("ack")) == 1
    assert event(world, 1000, "not_spam").data["acknowledged_before"] is True


def test_notspam_after_an_answer_reopens_and_leaves_the_first_response_met(
    world: World,
) -> None:
    ada_writes(world)
    world.receive(staff_answer(world, 1000, "Hello Ada, what pills?"))
    answered_at = world.ticket().first_responded_at
    assert tickets_command(world, "spam", block=True).startswith("ticket #1000 is spam: ")
    assert world.ticket().status == "spam"
    world.advance(H)
    tickets_command(world, "notspam")
    ticket = world.ticket()
    assert ticket.status == "open" and ticket.first_responded_at == answered_at
    assert ticket.resolution_due_at == world.now + 5 * 24 * H
    assert [e.data["via"] for e in world.events("spam", "not_spam")] == ["command line"] * 2


def test_refused_spam_commands_change_nothing(world: World) -> None:
    ada_writes(world)
    world.receive(staff_answer(world, 1000, "#notspam"))
    world.receive(staff_answer(world, 1000, "#spam\n#close"))
    world.receive(staff_answer(world, 1000, "#spam now"))
    assert world.ticket().status == "new"
    assert [kind for kind, _ in pending(world)][:2] == ["ack", "notification"]
    errors = [e.data["errors"] for e in world.events("staff_commands_refused")]
    assert "not spam (it is new)" in errors[0][0]
    assert "#spam and #close together" in errors[1][0]
    assert "expected nothing, or block" in errors[2][0]
    assert len(world.mails("staff_error")) == 3
    world.receive(staff_answer(world, 1000, "#close"))
    world.receive(staff_answer(world, 1000, "#spam"))
    assert world.ticket().status == "closed"
    with world.session() as session, pytest.raises(SpamRefused, match="is closed"):
        mark_spam(Step(session, world.app, world.now), world.ticket(), by="x", via="test")


def test_nobody_unproven_can_say_spam(world: World) -> None:
    ada_writes(world)
    # Alice's address without her reply token, and the customer herself on her own ticket.
    world.receive(staff_answer(world, 1000, "#spam block", token=False))
    world.receive(
        mail(
            f"Ada <{ADA}>",
            "Re: [#1000] Cheap pills",
            "#spam block\n",
            in_reply_to="<p1@customer.example>",
        )
    )
    assert world.ticket().status == "new"
    assert "spam" not in event_types(world, 1000)
    assert [kind for kind, _ in pending(world)][:2] == ["ack", "notification"]
    with world.session() as session:
        assert session.scalars(select(SenderRule)).all() == []


def test_a_row_being_handed_over_is_left_to_its_sender(world: World, database_url: str) -> None:
    """PostgreSQL: the sender holds its row locked, and #spam skips it. SQLite: its one
    sender holds no lock; a row withdrawn meanwhile costs the sender nothing but a log line."""
    ada_writes(world)
    ack_id = world.mails("ack")[0].id
    if database_url.startswith("postgresql"):
        with world.app.sessions() as sender:
            sender.scalars(select(Outbox).where(Outbox.id == ack_id).with_for_update()).one()
            tickets_command(world, "spam")
        marked = event(world, 1000, "spam")
        assert marked.data["sending_outbox_ids"] == [ack_id]
        assert [row.id for row in world.mails("ack")] == [ack_id]
        assert world.mails("notification") == []
        return
    claims = _ReadRows(world.app)
    row = asyncio.run(claims.next())
    assert row is not None and row.id == ack_id
    tickets_command(world, "spam")
    assert asyncio.run(claims.record(row, lambda r: "sent")) == "failed"
    assert world.mails("ack") == []
