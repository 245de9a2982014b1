"""Merging tickets on SQLite and PostgreSQL, through the real processing path: by the
command line and by a proven staff member's `#merge`, what moves and what stays, mail that
still names the merged ticket, the customer's notice, unmerge within 24 hours, refusals,
and a forged staff sender who changes nothing. Outbound mail stays in the outbox."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from sqlalchemy import select, update

from mailbridge.cli import merge as merge_cli
from mailbridge.cli import tickets as reports
from mailbridge.db import queries
from mailbridge.db.models import (
    Article,
    AttachmentRecord,
    Escalation,
    Ticket,
    TicketParticipant,
)
from mailbridge.errors import MailbridgeError
from mailbridge.inbound.identity import token_address
from mailbridge.tickets.merge import MergeRefused
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


def attachment_mail(sender: str, subject: str, message_id: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "support@shop.example", subject
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(START)
    msg.set_content("The same printer, still burning. Photo attached.\n")
    msg.add_attachment(b"\xff\xd8\xff photo", maintype="image", subtype="jpeg", filename="f.jpg")
    return msg.as_bytes()


def two_tickets(world: World) -> None:
    """#1000 from Ada at START (reply due START+8h), #1001 from Ada two hours later, with an
    attachment, a tag and participants (one of them also on #1000)."""
    world.receive(mail(f"Ada <{ADA}>", "Printer on fire", message_id="<a1@customer.example>"))
    world.advance(2 * H)
    world.receive(attachment_mail(f"Ada <{ADA}>", "Printer burning", "<b1@customer.example>"))
    with world.session() as session:
        first, second = world.ticket(1000), world.ticket(1001)
        queries.add_ticket_tags(session, second.id, ["printer", "urgent-ish"], world.now)
        queries.add_ticket_tags(session, first.id, ["printer"], world.now)
        for ticket_id, address, name in (
            (second.id, "carl@customer.example", "Carl on 1001"),
            (second.id, "dora@customer.example", "Dora on 1001"),
            (first.id, "dora@customer.example", "Dora on 1000"),
        ):
            session.add(
                TicketParticipant(
                    ticket_id=ticket_id,
                    address=address,
                    name=name,
                    added_at=world.now,
                    added_by=ADA,
                )
            )


def cli_merge(world: World, number: int, into: int, **options: bool) -> str:
    out = io.StringIO()
    merge_cli.merge(world.app, number, into, out, **options)
    return out.getvalue()


def cli_unmerge(world: World, number: int) -> str:
    out = io.StringIO()
    merge_cli.unmerge(world.app, number, out)
    return out.getvalue()


def participants_of(world: World, number: int) -> dict[str, str]:
    with world.app.sessions() as session:
        rows = session.scalars(
            select(TicketParticipant).where(TicketParticipant.ticket_id == world.ticket(number).id)
        )
        return {row.address: row.name for row in rows}


def tags_of(world: World, number: int) -> list[str]:
    with world.app.sessions() as session:
        return queries.ticket_tags(session, world.ticket(number).id)


# --- merging from the command line -------------------------------------------------------------


def test_merge_moves_everything_and_leaves_the_ticket_merged(world: World) -> None:
    two_tickets(world)
    moved_ids = [a.id for a in articles_of(world, 1001)]
    world.advance(H)

    said = cli_merge(world, 1001, 1000)

    assert "ticket #1001 merged into #1000: 1 articles moved; the customer is told" in said
    assert [a.id for a in articles_of(world, 1001)] == []
    assert set(moved_ids) <= {a.id for a in articles_of(world, 1000)}
    with world.app.sessions() as session:
        photo = session.scalars(select(AttachmentRecord)).one()
        assert session.get_one(Article, photo.article_id).ticket_id == world.ticket(1000).id
    assert tags_of(world, 1000) == ["printer", "urgent-ish"] and tags_of(world, 1001) == []
    # Dora was on both: #1000's row is kept; Carl comes over.
    assert participants_of(world, 1000) == {
        "carl@customer.example": "Carl on 1001",
        "dora@customer.example": "Dora on 1000",
    }
    assert participants_of(world, 1001) == {}
    merged, kept = world.ticket(1001), world.ticket(1000)
    assert merged.status == "merged" and merged.merged_into_id == kept.id
    assert merged.merged_at == START + 3 * H and merged.next_escalation_at is None
    assert kept.status == "new" and kept.first_response_due_at == START + 8 * H
    assert kept.next_escalation_at == START + 8 * H
    into = event(world, 1001, "merged_into")
    assert into.data["into"] == 1000 and into.data["articles"] == moved_ids
    assert (into.data["by"], into.data["via"]) == ("command line", "command line")
    assert into.data["previous"]["source"]["status"] == "new"
    came = event(world, 1000, "merged_from")
    assert came.data["source"] == 1001 and came.data["via"] == "command line"


def test_the_earlier_first_response_deadline_survives_and_escalations_stay(
    world: World,
) -> None:
    two_tickets(world)
    world.at(8 * H)  # #1000's reply was due now: the lead is told
    assert world.sweep() == 1
    cli_merge(world, 1000, 1001)  # the older ticket goes into the newer one

    kept = world.ticket(1001)
    assert kept.first_response_due_at == START + 8 * H  # #1000's, the earlier
    assert kept.next_escalation_at == START + 8 * H  # its level fired on #1000, not here
    with world.app.sessions() as session:
        fired = session.scalars(select(Escalation)).one()
    assert fired.ticket_id == world.ticket(1000).id
    assert world.sweep() == 1  # the surviving deadline escalates the live ticket
    with world.app.sessions() as session:
        owners = [e.ticket_id for e in session.scalars(select(Escalation).order_by(Escalation.id))]
    assert owners == [world.ticket(1000).id, world.ticket(1001).id]


def test_unanswered_mail_opens_a_kept_ticket_that_waited_on_its_customer(world: World) -> None:
    two_tickets(world)
    world.advance(H)
    world.receive(staff_answer(world, 1000, "Hello Ada,\n\nplease unplug it."))
    answered = world.ticket(1000)
    assert answered.status == "waiting" and answered.first_responded_at == START + 3 * H
    world.advance(H)
    cli_merge(world, 1001, 1000)

    kept = world.ticket(1000)
    assert kept.status == "open" and kept.waiting_since is None
    assert kept.first_responded_at == START + 3 * H  # met, and kept as it was
    assert kept.first_response_due_at == START + 8 * H
    assert kept.next_escalation_at is None  # the resolution deadline has no steps here
    cli_unmerge(world, 1001)
    assert world.ticket(1001).status == "new"
    assert world.ticket(1001).next_escalation_at == START + 2 * H + 8 * H


def test_the_customer_is_told_once_in_their_conversation(world: World) -> None:
    two_tickets(world)
    world.advance(H)
    cli_merge(world, 1001, 1000)
    notices = world.mails("merged")
    assert len(notices) == 1
    notice = notices[0]
    subject, body = text_of(notice)
    assert notice.envelope_to == [ADA]
    assert "[#1000]" in subject
    assert "[#1001]" in body and "continues as\n[#1000]" in body
    raw = notice.raw.decode()
    assert "In-Reply-To: <" in raw and "b1@customer.example" in raw
    assert "Auto-Submitted: auto-generated" in raw

    cli_unmerge(world, 1001)
    cli_merge(world, 1001, 1000)
    assert len(world.mails("merged")) == 1, "merged into the same ticket again: told once"


def test_the_italian_notice(world: World) -> None:
    world.receive(mail(f"Ada <{ADA}>", "Stampante", message_id="<i1@customer.example>"))
    world.receive(
        mail(
            f"Ada <{ADA}>",
            "Stampante in fiamme",
            "Buongiorno,\nla stampante è ancora in fiamme. Cosa devo fare?\nGrazie\n",
            message_id="<i2@customer.example>",
        )
    )
    with world.session() as session:
        session.execute(update(Ticket).where(Ticket.number == 1001).values(language="it"))
    cli_merge(world, 1001, 1000)
    _, body = text_of(world.mails("merged")[0])
    assert "la sua richiesta [#1001]" in body and "prosegue\ncome [#1000]" in body


# --- mail that still names the merged ticket ----------------------------------------------------


def test_later_mail_to_the_merged_ticket_lands_on_the_one_it_went_into(world: World) -> None:
    two_tickets(world)
    ack_of_1001 = world.mails("ack")[1]
    cli_merge(world, 1001, 1000)

    world.receive(mail(f"Ada <{ADA}>", "Re: [#1001] Printer burning", "By tag."))
    world.receive(
        mail(f"Ada <{ADA}>", "Re: Printer", "By my own id.", in_reply_to="<b1@customer.example>")
    )
    world.receive(
        mail(f"Ada <{ADA}>", "Re: ack", "By the ack.", in_reply_to=f"<{ack_of_1001.message_id}>")
    )
    world.receive(staff_answer(world, 1001, "Hello Ada,\n\nthe technician is coming."))

    assert articles_of(world, 1001) == []
    texts = [a.text_body.strip() for a in articles_of(world, 1000)]
    assert {"By tag.", "By my own id.", "By the ack."} <= set(texts)
    assert any("technician" in t for t in texts)
    assert world.ticket(1001).status == "merged"
    with world.app.sessions() as session:
        tickets = session.scalars(select(Ticket)).all()
    assert len(tickets) == 2, "no mail opened a new ticket"


def test_the_merged_tickets_requester_reaches_the_kept_ticket_by_tag(world: World) -> None:
    world.receive(mail(f"Ada <{ADA}>", "Printer on fire", message_id="<a1@customer.example>"))
    world.receive(mail(f"Bea <{BEA}>", "Office printer too", message_id="<c1@customer.example>"))
    cli_merge(world, 1001, 1000)
    assert participants_of(world, 1000) == {BEA: "Bea"}  # answers on #1000 reach her too

    world.receive(mail(f"Bea <{BEA}>", "Re: [#1000] Printer on fire", "Any news?"))
    followed = articles_of(world, 1000)[-1]
    assert followed.from_address == BEA and followed.author_kind == "customer"
    assert "followup" in event_types(world, 1000)


# --- unmerge --------------------------------------------------------------------------------------


def test_unmerge_within_24_hours_moves_back_exactly_what_came(world: World) -> None:
    two_tickets(world)
    before = {
        1000: (tags_of(world, 1000), participants_of(world, 1000)),
        1001: (tags_of(world, 1001), participants_of(world, 1001)),
    }
    came = [a.id for a in articles_of(world, 1001)]
    due_1000 = world.ticket(1000).first_response_due_at
    cli_merge(world, 1000, 1001)
    assert world.ticket(1001).first_response_due_at == due_1000
    world.advance(23 * H)
    world.receive(mail(f"Ada <{ADA}>", "Re: [#1000] Printer on fire", "Later, on the kept one."))

    said = cli_unmerge(world, 1000)

    assert "ticket #1000 taken back out of #1001; its status is new again" in said
    restored = world.ticket(1000)
    assert restored.status == "new" and restored.merged_into_id is None
    assert restored.merged_at is None and restored.first_response_due_at == due_1000
    assert restored.next_escalation_at == due_1000
    assert [a.id for a in articles_of(world, 1001)][: len(came)] == came
    assert articles_of(world, 1001)[-1].text_body.strip() == "Later, on the kept one."
    assert [a.message_id for a in articles_of(world, 1000)] == ["a1@customer.example"]
    assert (tags_of(world, 1000), participants_of(world, 1000)) == before[1000]
    assert (tags_of(world, 1001), participants_of(world, 1001)) == before[1001]
    assert world.ticket(1001).first_response_due_at == START + 2 * H + 8 * H
    for number in (1000, 1001):
        undone = event(world, number, "unmerged")
        assert undone.data["by"] == "command line" and undone.data["via"] == "command line"
    # Mail by #1000's own ids finds it again.
    world.receive(
        mail(f"Ada <{ADA}>", "Re: Printer", "Back home.", in_reply_to="<a1@customer.example>")
    )
    assert articles_of(world, 1000)[-1].text_body.strip() == "Back home."


def test_unmerge_is_refused_after_24_hours_or_after_a_further_merge(world: World) -> None:
    two_tickets(world)
    world.receive(mail(f"Bea <{BEA}>", "Other", message_id="<c1@customer.example>"))
    cli_merge(world, 1001, 1000)
    world.advance(24 * H + timedelta(minutes=1))
    with pytest.raises(MergeRefused, match="more than 24 hours ago"):
        cli_unmerge(world, 1001)
    assert world.ticket(1001).status == "merged"
    world.advance(-2 * H)
    cli_merge(world, 1000, 1002)
    with pytest.raises(MergeRefused, match="since been merged into #1002; unmerge that first"):
        cli_unmerge(world, 1001)
    with pytest.raises(MergeRefused, match="#1002 is not merged"):
        cli_unmerge(world, 1002)


# --- refusals -----------------------------------------------------------------------------------


def test_refusals_change_nothing(world: World) -> None:
    two_tickets(world)
    with pytest.raises(MergeRefused, match="cannot be merged into itself"):
        cli_merge(world, 1001, 1001)
    with pytest.raises(MergeRefused, match="no ticket #4242"):
        cli_merge(world, 1001, 4242)
    with pytest.raises(MailbridgeError, match="no ticket #4242"):
        cli_merge(world, 4242, 1001)
    with pytest.raises(MergeRefused, match="no ticket #99999999999"):
        cli_merge(world, 1001, 99999999999)
    # A tag no ticket can have is no ticket's, on PostgreSQL's 32-bit column too.
    world.receive(mail(f"Ada <{ADA}>", "Re: [#999999999999] Printer", "Huge tag."))
    assert world.ticket(1002).status == "new"  # a new ticket, and nothing failed
    cli_merge(world, 1001, 1000)
    with pytest.raises(MergeRefused, match="already merged into #1000"):
        cli_merge(world, 1001, 1000)
    with pytest.raises(MergeRefused, match="would make a circle"):
        cli_merge(world, 1000, 1001)
    assert world.ticket(1000).status == "new" and world.ticket(1000).merged_into_id is None
    assert len(world.mails("merged")) == 1


def test_merging_into_a_merged_ticket_follows_it_to_the_live_one(world: World) -> None:
    two_tickets(world)
    world.receive(mail(f"Ada <{ADA}>", "Third time", message_id="<t1@customer.example>"))
    cli_merge(world, 1001, 1000)
    said = cli_merge(world, 1002, 1001)
    assert "ticket #1002 merged into #1000 (#1001 was merged into #1000 before)" in said
    assert world.ticket(1002).merged_into_id == world.ticket(1000).id
    assert event(world, 1002, "merged_into").data["asked"] == 1001


def test_tickets_of_different_mailboxes_need_the_flag(world: World) -> None:
    two_tickets(world)
    with world.session() as session:
        session.execute(update(Ticket).where(Ticket.number == 1001).values(mailbox="sales"))
    with pytest.raises(MergeRefused, match="--across-mailboxes"):
        cli_merge(world, 1001, 1000)
    assert "merged into #1000" in cli_merge(world, 1001, 1000, across_mailboxes=True)


# --- by mail --------------------------------------------------------------------------------------


def test_a_proven_staff_members_merge_by_mail(world: World) -> None:
    two_tickets(world)
    world.receive(staff_answer(world, 1001, "#merge 1000\n\nHello Ada, we carry on in the other."))

    assert world.ticket(1001).status == "merged"
    into = event(world, 1001, "merged_into")
    assert (into.data["by"], into.data["via"]) == (ALICE, "mail")
    relayed = world.mails("reply")
    assert len(relayed) == 1 and "we carry on" in text_of(relayed[0])[1]
    staff_article = [a for a in articles_of(world, 1000) if a.author_kind == "staff"]
    assert len(staff_article) == 1, "the reply moved with the rest"
    assert len(world.mails("merged")) == 1


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("#merge 4242", "no ticket #4242"),
        ("#merge #1001", "cannot be merged into itself"),
        ("#merge 999999999999", "no ticket #999999999999"),
        ("#split", "#split: the reply answers no notification of ours"),
    ],
)
def test_a_refused_merge_by_mail_changes_nothing_and_says_why(
    world: World, command: str, error: str
) -> None:
    two_tickets(world)
    world.receive(staff_answer(world, 1001, f"{command}\n\nHello Ada."))
    assert world.ticket(1001).status == "new"
    assert world.mails("reply") == [] and world.mails("merged") == []
    refused = event(world, 1001, "staff_commands_refused")
    assert any(error in e for e in refused.data["errors"])
    assert len(world.mails("staff_error")) == 1


def test_a_forged_staff_sender_cannot_merge(world: World) -> None:
    two_tickets(world)
    world.receive(staff_answer(world, 1001, "#merge 1000\n\nMerged.", token=False))
    world.receive(
        mail(
            f"Alice <{ALICE}>",
            "Re: [#1001] Printer",
            "#merge 1000\n",
            in_reply_to="<b1@customer.example>",
        )
    )
    for number in (1000, 1001):
        assert world.ticket(number).status == "new"
        assert "merged_into" not in event_types(world, number)
        assert "merged_from" not in event_types(world, number)
    # A reply token issued to Bob, used by Alice: refused, nothing else happens.
    bobs = staff_answer(world, 1001, "#merge 1000\n\nMerged.").replace(
        token_address(world.app, world.ticket(1001), ALICE, world.now).encode(),
        token_address(world.app, world.ticket(1001), "bob@shop.example", world.now).encode(),
    )
    world.receive(bobs)
    assert "staff_token_refused" in event_types(world, 1001)
    assert len(articles_of(world, 1001)) == 2  # recorded, acting on nothing
    assert world.mails("merged") == []


# --- tickets show -------------------------------------------------------------------------------


def test_show_names_both_ends_of_a_merge(world: World) -> None:
    two_tickets(world)
    cli_merge(world, 1001, 1000)
    shown = io.StringIO()
    reports.show_ticket(world.app, 1001, True, shown)
    document = json.loads(shown.getvalue())
    assert document["status"] == "merged" and document["merged_into"] == 1000
    assert document["merged_from"] == []
    reports.show_ticket(world.app, 1000, True, shown := io.StringIO())
    kept = json.loads(shown.getvalue())
    assert kept["merged_into"] is None and kept["merged_from"] == [1001]
    reports.show_ticket(world.app, 1001, False, shown := io.StringIO())
    assert "merged_into: #1000" in shown.getvalue()
    reports.show_ticket(world.app, 1000, False, shown := io.StringIO())
    assert "merged_from: #1001" in shown.getvalue()
    reports.list_tickets(world.app, None, False, shown := io.StringIO())
    assert "merged" in shown.getvalue()
