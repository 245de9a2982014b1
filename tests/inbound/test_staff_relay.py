"""Staff answer from their own mail client (relay mode) or from the shared account (observe
mode), end to end on pymap and the aiosmtpd sink, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.db import queries
from mailbridge.db.models import Article, Event, Outbox, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from tests.support.builders import mail, make_config
from tests.support.served_app import app, body, clock, run_pass, to
from tests.support.sla_world import START
from tests.support.staff_relay import (
    CUSTOMER,
    NEW_TEXT,
    events,
    open_ticket,
    staff_reply,
    ticket,
)
from tests.support.staff_world import ALICE, SIGNED_STAFF

pytestmark = pytest.mark.integration

__all__ = ["app", "clock"]  # the fixtures these tests use


def build(
    tmp_path: Path,
    database_url: str,
    imap: EmbeddedImapServer,
    smtp: SmtpSink,
    clock: FrozenClock,
    **sections: Any,
) -> App:
    config = make_config(
        tmp_path, database_url=database_url, imap=imap, smtp=smtp, staff=SIGNED_STAFF, **sections
    )
    return build_app(config, clock=clock)


@pytest.fixture
def app_sections() -> dict[str, Any]:
    return {"staff": SIGNED_STAFF}


def assert_nothing_of_staff_leaks(sink: SmtpSink) -> None:
    """Customers never see staff addresses, internal notes or reply tokens."""
    for received in to(sink, CUSTOMER):
        raw = received.raw.decode("utf-8", "replace").lower()
        assert ALICE not in raw and "bob@shop.example" not in raw
        assert "team@shop.example" not in raw and "support+t" not in raw
        assert "internal:" not in raw


# --- relay mode ------------------------------------------------------------------------------


def test_notification_carries_the_customer_text_attachments_token_and_deadline(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    photo = b"\xff\xd8\xff" + b"jpeg bytes " * 300
    notice = open_ticket(app, imap_server, smtp_sink, attachment=photo)

    message = notice.message
    assert "[#1000]" in message["Subject"]
    reply_to = message["Reply-To"].addresses[0].addr_spec
    assert reply_to.startswith("support+t1000-") and reply_to.endswith("@shop.example")
    assert "my printer is on fire, photo attached." in body(notice)
    assert "Reply due:" in body(notice)
    files = [part.get_filename() for part in message.iter_attachments()]
    assert files == ["fire.jpg"]
    attached = next(message.iter_attachments()).get_content()
    assert attached == photo
    # Notifications of one ticket thread together in the staff member's client.
    imap_server.append(
        mail(
            f"Ada <{CUSTOMER}>",
            "Re: Printer on fire",
            "Any news?",
            in_reply_to="<p1@customer.example>",
        )
    )
    run_pass(app)
    second = to(smtp_sink.wait_for(3), "team@shop.example")[-1].message
    assert "Follow-up" in second["Subject"]
    assert second["References"] == message["References"]
    assert second["In-Reply-To"] == message["In-Reply-To"]
    assert "Earlier on this ticket" in body(to(smtp_sink, "team@shop.example")[-1])
    assert len(to(smtp_sink, CUSTOMER)) == 1  # the follow-up gets no second acknowledgement


@pytest.mark.parametrize("style", ["gmail", "thunderbird", "outlook", "outlook-it"])
def test_staff_reply_is_relayed_to_the_customer_without_quote_or_signature(
    style: str, app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink)
    ack = to(smtp_sink, CUSTOMER)[0].message
    invoice = b"%PDF-1.4 invoice " * 100
    imap_server.append(
        staff_reply(
            notice,
            NEW_TEXT + "\n\n-- \nAlice Bianchi | Shop support",
            style=style,
            attachment=invoice,
        )
    )
    run_pass(app)

    answers = to(smtp_sink.wait_for(3), CUSTOMER)
    assert len(answers) == 2
    answer = answers[1]
    text = body(answer)
    assert NEW_TEXT in text
    assert "Shop Support wrote" not in text and "> " not in text and "Sent:" not in text
    assert "Inviato:" not in text and "| Shop support" not in text
    assert "Alice" in text  # the first name, never the address
    message = answer.message
    assert message["From"].addresses[0].addr_spec == "support@shop.example"
    assert message["In-Reply-To"] in (ack["Message-ID"], "<p1@customer.example>")
    assert "<p1@customer.example>" in message["References"]
    assert "[#1000]" in message["Subject"]
    assert message["Auto-Submitted"] is None  # a person wrote it
    assert [p.get_filename() for p in message.iter_attachments()] == ["invoice.pdf"]
    assert_nothing_of_staff_leaks(smtp_sink)

    answered = ticket(app)
    assert answered.status == "waiting"
    assert answered.first_responded_at == START
    with app.sessions() as session:
        staff_article = session.scalars(select(Article).where(Article.author_kind == "staff")).one()
    assert staff_article.direction == "out" and staff_article.from_address == ALICE
    assert staff_article.text_body.strip() == NEW_TEXT


def test_note_is_recorded_and_never_reaches_the_customer(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink)
    imap_server.append(staff_reply(notice, "#note\nInternal: she called twice, be gentle."))
    run_pass(app)

    assert len(to(smtp_sink, CUSTOMER)) == 1  # the acknowledgement only
    with app.sessions() as session:
        rows = session.scalars(select(Outbox).where(Outbox.kind == "reply")).all()
        note = session.scalars(select(Article).where(Article.internal.is_(True))).one()
    assert rows == []
    assert "she called twice" in note.text_body
    assert ticket(app).first_responded_at is None  # a note is not a response
    assert "staff_note" in [e.type for e in events(app)]


def test_commands_change_the_ticket(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink)
    imap_server.append(
        staff_reply(
            notice, "#priority high\n#assign bob@shop.example\n#queue billing\n\n" + NEW_TEXT
        )
    )
    run_pass(app)

    changed = ticket(app)
    assert (changed.priority, changed.assignee, changed.queue) == (
        "high",
        "bob@shop.example",
        "billing",
    )
    assert len(to(smtp_sink.wait_for(3), CUSTOMER)) == 2
    assert "#priority" not in body(to(smtp_sink, CUSTOMER)[1])
    assert_nothing_of_staff_leaks(smtp_sink)


def test_tag_and_untag_change_the_tickets_tags_and_send_nothing(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink)
    with app.transaction() as session:  # as a routing rule would have tagged it
        queries.add_ticket_tags(session, ticket(app).id, ["unhappy", "Refund"], START)
    imap_server.append(staff_reply(notice, "#untag unhappy, refund, never-set\n#tag vip billing"))
    run_pass(app)

    with app.sessions() as session:
        assert queries.ticket_tags(session, ticket(app).id) == ["billing", "vip"]
    answer = [e for e in events(app) if e.type == "staff_reply"][-1]
    assert answer.data["changes"] == {
        "tags_added": ["vip", "billing"],
        "tags_removed": ["Refund", "unhappy"],
    }
    assert len(to(smtp_sink.wait_for(2), CUSTOMER)) == 1, "commands alone say nothing"


def test_close_alone_tells_the_customer_with_the_closed_template(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink)
    imap_server.append(staff_reply(notice, "#close"))
    run_pass(app)

    closed = ticket(app)
    assert closed.status == "closed" and closed.resolved_at == START
    assert closed.next_escalation_at is None
    answers = to(smtp_sink.wait_for(3), CUSTOMER)
    assert "We have closed ticket [#1000]" in body(answers[1])


def test_resolve_with_text_relays_the_text_and_resolves(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink)
    imap_server.append(staff_reply(notice, "#resolve\n" + NEW_TEXT))
    run_pass(app)

    assert ticket(app).status == "resolved"
    answers = to(smtp_sink.wait_for(3), CUSTOMER)
    assert NEW_TEXT in body(answers[1])


def test_template_command_sends_the_canned_reply(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink)
    imap_server.append(staff_reply(notice, "#template refund"))
    run_pass(app)

    answers = to(smtp_sink.wait_for(3), CUSTOMER)
    assert "We have issued your refund" in body(answers[1])
    assert ticket(app).first_responded_at == START


def test_command_error_sends_nothing_to_the_customer_and_tells_the_staff_member(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink)
    imap_server.append(staff_reply(notice, "#priority soonish\n#template nosuch\n" + NEW_TEXT))
    run_pass(app)

    assert len(to(smtp_sink, CUSTOMER)) == 1
    complaint = to(smtp_sink.wait_for(3), ALICE)
    assert len(complaint) == 1
    text = body(complaint[0])
    assert "#priority soonish" in text and "#template nosuch" in text
    assert "refund" in text  # the known canned replies are listed
    unchanged = ticket(app)
    assert unchanged.priority == "normal" and unchanged.first_responded_at is None
    assert "staff_commands_refused" in [e.type for e in events(app)]


# --- trust -----------------------------------------------------------------------------------


def test_forged_staff_sender_without_proof_is_customer_mail(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink)
    # Right From, right subject tag, but sent to the plain address: no token, no proof.
    forged = staff_reply(notice, "#close\nRefund denied.", to_address="support@shop.example")
    imap_server.append(forged)
    run_pass(app)

    assert ticket(app).status != "closed"
    assert len(to(smtp_sink, CUSTOMER)) == 1
    assert "staff_unproven" in [e.type for e in events(app)]
    with app.sessions() as session:
        assert session.scalars(select(Article).where(Article.author_kind == "staff")).all() == []


def test_a_token_replayed_on_another_ticket_is_refused(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink)
    imap_server.append(
        mail("Bob <bob@other.example>", "Another problem", message_id="<o1@other.example>")
    )
    run_pass(app)
    token_address = notice.message["Reply-To"].addresses[0].addr_spec
    replayed = token_address.replace("+t1000-", "+t1001-")
    imap_server.append(
        staff_reply(notice, "#close\nClosing yours.", to_address=replayed, in_reply_to=False)
    )
    run_pass(app)

    with app.sessions() as session:
        statuses = session.scalars(select(Ticket.status)).all()
        refused = session.scalars(select(Event).where(Event.type == "staff_token_refused")).all()
        staff_articles = session.scalars(
            select(Article).where(Article.author_kind == "staff")
        ).all()
    assert "closed" not in statuses
    assert len(refused) == 1 and refused[0].data["by"] == ALICE
    assert "not issued to alice@shop.example" in refused[0].data["reason"]
    assert staff_articles == []
    assert not to(smtp_sink, "bob@other.example")[1:]
    told = to(smtp_sink, ALICE)
    assert len(told) == 1 and "Not accepted" in str(told[0].message["Subject"])
    assert "not issued to alice@shop.example" in body(told[0])


def test_trusted_authentication_results_prove_a_reply_without_token(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink)
    headers = {
        "Authentication-Results": "mx.shop.example; dkim=pass header.d=shop.example; "
        "spf=pass smtp.mailfrom=shop.example"
    }
    imap_server.append(
        staff_reply(notice, NEW_TEXT, to_address="support@shop.example", headers=headers)
    )
    run_pass(app)

    assert len(to(smtp_sink.wait_for(3), CUSTOMER)) == 2
    assert ticket(app).status == "waiting"


def test_an_authentication_result_from_another_server_proves_nothing(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink)
    headers = {"Authentication-Results": "mx.attacker.example; dkim=pass header.d=shop.example"}
    imap_server.append(
        staff_reply(notice, NEW_TEXT, to_address="support@shop.example", headers=headers)
    )
    run_pass(app)

    assert len(to(smtp_sink, CUSTOMER)) == 1
    assert ticket(app).first_responded_at is None


def test_an_answer_to_an_escalation_stays_among_staff(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    open_ticket(app, imap_server, smtp_sink)
    clock.advance(timedelta(hours=9))
    run_pass(app)
    escalation = to(smtp_sink.wait_for(3), "lead@shop.example")[0]
    headers = {"Authentication-Results": "mx.shop.example; dkim=pass header.d=shop.example"}
    imap_server.append(
        staff_reply(
            escalation,
            "Bob, can you take this one today?",
            to_address="support@shop.example",
            headers=headers,
        )
    )
    run_pass(app)

    assert len(to(smtp_sink, CUSTOMER)) == 1  # the acknowledgement only
    with app.sessions() as session:
        note = session.scalars(select(Article).where(Article.author_kind == "staff")).one()
    assert note.internal and "Bob, can you take this one" in note.text_body
    assert ticket(app).first_responded_at is None


def test_out_of_office_from_staff_is_not_relayed(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink)
    imap_server.append(
        staff_reply(
            notice,
            "I am out of the office until Monday.",
            headers={"Auto-Submitted": "auto-replied"},
        )
    )
    run_pass(app)

    assert len(to(smtp_sink, CUSTOMER)) == 1
    assert ticket(app).first_responded_at is None


# --- observe mode ---------------------------------------------------------------------------


def test_observe_mode_records_a_reply_from_the_sent_folder(
    tmp_path: Path,
    database_url: str,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    mailbox = {
        "name": "support",
        "address": "support@shop.example",
        "host": imap_server.host,
        "port": imap_server.port,
        "security": "none",
        "username": imap_server.username,
        "password_env": "MB_TEST_IMAP_PASSWORD",
        "after": "move",
        "staff_mode": "observe",
        "sent_folder": "Sent",
    }
    app = build(tmp_path, database_url, imap_server, smtp_sink, clock, mailbox=[mailbox])
    try:
        # Mail sent before mailbridge came: history, never recorded as an answer.
        imap_server.append(
            mail(
                "Shop Support <support@shop.example>",
                "Re: Printer on fire",
                "An old answer.",
                to=CUSTOMER,
                message_id="<old@shop.example>",
                in_reply_to="<p1@customer.example>",
            ),
            folder="Sent",
        )
        imap_server.append(
            mail(f"Ada <{CUSTOMER}>", "Printer on fire", message_id="<p1@customer.example>")
        )
        run_pass(app)  # first connection: the Sent folder's history is skipped
        sent_before = len(smtp_sink.wait_for(2))
        clock.advance(timedelta(minutes=30))
        answer = mail(
            "Shop Support <support@shop.example>",
            "Re: [#1000] Printer on fire",
            "Hello Ada, a new printer is on its way.\n\n"
            f"On Mon, 23 Nov 2026 at 09:10, Ada <{CUSTOMER}> wrote:\n"
            "> Hello,\n> my printer is on fire.",
            to=CUSTOMER,
            message_id="<s1@shop.example>",
            in_reply_to="<p1@customer.example>",
        )
        imap_server.append(answer, folder="Sent")
        run_pass(app)

        observed = ticket(app)
        with app.sessions() as session:
            texts = session.scalars(
                select(Article.text_body).where(Article.author_kind == "staff")
            ).all()
        assert [t.strip() for t in texts] == ["Hello Ada, a new printer is on its way."]
        assert observed.status == "waiting"
        assert observed.first_responded_at == START + timedelta(minutes=30)
        assert len(smtp_sink.received) == sent_before  # nothing sent again
        assert len(imap_server.messages("Sent")) == 2  # the Sent folder is left alone
        # The customer's answer to it, with support only in Cc, joins the ticket.
        imap_server.append(
            mail(
                f"Ada <{CUSTOMER}>",
                "Re: [#1000] Printer on fire",
                "Thanks!",
                to="someone@else.example",
                headers={"Cc": "support@shop.example"},
                in_reply_to="<s1@shop.example>",
            )
        )
        run_pass(app)
        with app.sessions() as session:
            assert session.scalar(select(Ticket.id).where(Ticket.number == 1001)) is None
        assert ticket(app).status == "open"
    finally:
        app.close()
