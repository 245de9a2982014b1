"""Every mail mailbridge writes by itself says so (RFC 3834 `Auto-Submitted`), so other
autoresponders never answer it and no two of them can ping-pong; a staff member's words
relayed to the customer do not. One test per kind of mail, read from the SMTP sink's bytes
after a real daemon pass, on both databases."""

from __future__ import annotations

import email
from datetime import timedelta
from email.message import Message
from pathlib import Path

import pytest

from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import ReceivedMail, SmtpSink
from mailbridge.outbound.queue import AUTO_SUBMITTED
from tests.hostile.conftest import STAFF, World, make_world
from tests.hostile.replies import ALICE, CUSTOMER, open_ticket, reply, token_of
from tests.support.builders import mail

pytestmark = pytest.mark.integration

TEAM = "team@shop.example"


def auto_submitted(received: ReceivedMail) -> list[str]:
    """Every Auto-Submitted line of the bytes the SMTP server was given."""
    parsed = email.message_from_bytes(received.raw)
    assert isinstance(parsed, Message)
    return [str(value).strip() for value in parsed.get_all("Auto-Submitted", [])]


def answer(world: World, text: str) -> None:
    """Alice answers the team's notification from her mail client."""
    notice = world.sent_to(TEAM)[0]
    world.deliver(
        reply(
            f"Alice <{ALICE}>",
            text,
            to=token_of(notice),
            in_reply_to=str(notice.message["Message-ID"]),
        )
    )
    world.run()


def test_the_acknowledgement_is_auto_replied(world: World) -> None:
    open_ticket(world)
    (ack,) = world.sent_to(CUSTOMER)
    assert auto_submitted(ack) == ["auto-replied"]


def test_the_staff_notification_is_auto_generated(world: World) -> None:
    notice = open_ticket(world)
    assert auto_submitted(notice) == ["auto-generated"]


def test_a_command_error_is_auto_replied(world: World) -> None:
    open_ticket(world)
    answer(world, "#priority soonish\nOn it.")
    (error,) = world.sent_to(ALICE)
    assert "soonish" in error.raw.decode()
    assert auto_submitted(error) == ["auto-replied"]


def test_a_refused_token_is_answered_auto_replied(world: World) -> None:
    notice = open_ticket(world)
    world.deliver(reply("eve@evil.example", "#close", to=token_of(notice)))
    world.run()
    (refused,) = world.sent_to("eve@evil.example")
    assert auto_submitted(refused) == ["auto-replied"]


def test_a_collision_mail_is_auto_replied(world: World) -> None:
    open_ticket(world)
    answer(world, "A new printer is on its way.")
    answer(world, "Please send us the serial number.")  # the first notification, again
    (held,) = world.sent_to(ALICE)
    assert world.outbox("collision") and "serial number" in held.raw.decode()
    assert auto_submitted(held) == ["auto-replied"]


def test_a_query_answer_is_auto_replied(world: World) -> None:
    open_ticket(world)
    answer(world, "#unassigned")
    (answered,) = world.sent_to(ALICE)
    assert world.outbox("query") and "#1000" in answered.raw.decode()
    assert auto_submitted(answered) == ["auto-replied"]


def test_the_closed_mail_is_auto_generated(world: World) -> None:
    open_ticket(world)
    answer(world, "#close")
    closed = world.sent_to(CUSTOMER)[-1]
    assert world.outbox("closed") and world.ticket(1000).status == "closed"
    assert auto_submitted(closed) == ["auto-generated"]


def test_the_merged_notice_is_auto_generated(world: World) -> None:
    open_ticket(world)
    world.deliver(mail(f"Ada <{CUSTOMER}>", "Printer still on fire", message_id="<p2@x.example>"))
    world.run()
    answer(world, "#merge 1001")
    notice = world.sent_to(CUSTOMER)[-1]
    assert world.outbox("merged") and "[#1001]" in str(notice.message["Subject"])
    assert auto_submitted(notice) == ["auto-generated"]


def test_a_relayed_staff_answer_is_not_automated(world: World) -> None:
    open_ticket(world)
    answer(world, "A new printer is on its way.")
    relayed = world.sent_to(CUSTOMER)[-1]
    assert "A new printer is on its way." in relayed.raw.decode()
    assert auto_submitted(relayed) == []


def test_the_escalation_is_auto_generated(world: World) -> None:
    open_ticket(world)
    world.clock.advance(timedelta(hours=8, minutes=1))
    world.run()
    (escalation,) = world.sent_to("lead@shop.example")
    assert auto_submitted(escalation) == ["auto-generated"]


def test_the_deadline_warning_is_auto_generated(
    tmp_path: Path, database_url: str, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    sla = [
        {
            "name": "standard",
            "first_response": "8h",
            "resolution": "5d",
            "levels": [{"at": "-1h", "notify": "warn@shop.example"}],
        }
    ]
    world = make_world(tmp_path, database_url, imap_server, smtp_sink, sla=sla, staff=STAFF)
    try:
        world.deliver(mail(f"Ada <{CUSTOMER}>", "Printer on fire"))
        world.run()
        world.clock.advance(timedelta(hours=7, minutes=1))
        world.run()
        (warning,) = world.sent_to("warn@shop.example")
        assert world.outbox("sla_warning")
        assert auto_submitted(warning) == ["auto-generated"]
    finally:
        world.app.close()


def test_the_waiting_reminder_and_auto_closed_mails_are_auto_generated(
    tmp_path: Path, database_url: str, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    tickets = {"remind_after": "3d", "close_after": "7d"}
    world = make_world(tmp_path, database_url, imap_server, smtp_sink, tickets=tickets)
    try:
        open_ticket(world)
        answer(world, "Could you send us the serial number?")
        before = len(world.sent_to(CUSTOMER))
        for days in (3, 7):
            world.clock.advance(timedelta(days=days, minutes=1))
            world.run()
            world.run()  # a second pass sends nothing again
        reminder, closed = world.sent_to(CUSTOMER)[before:]
        assert "still waiting for your answer" in reminder.raw.decode()
        assert "we have closed ticket" in closed.raw.decode()
        assert world.ticket(1000).status == "resolved"
        assert auto_submitted(reminder) == auto_submitted(closed) == ["auto-generated"]
    finally:
        world.app.close()


def test_the_daily_digest_is_auto_generated(
    tmp_path: Path, database_url: str, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    world = make_world(tmp_path, database_url, imap_server, smtp_sink, digest={"hour": 8})
    try:
        world.deliver(mail(f"Ada <{CUSTOMER}>", "Printer on fire"))
        world.run()  # Monday 09:00: past the digest hour on a business day
        (digest,) = [m for m in world.sent_to(TEAM) if "Unassigned" in m.message["Subject"]]
        assert world.outbox("digest")
        assert auto_submitted(digest) == ["auto-generated"]
    finally:
        world.app.close()


def test_the_weekly_report_is_auto_generated(
    tmp_path: Path, database_url: str, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    world = make_world(
        tmp_path, database_url, imap_server, smtp_sink, reports={"weekly_to": ["lead@shop.example"]}
    )
    try:
        world.run()  # Monday 09:00: past the report's moment, Monday 08:00
        (report,) = [
            m
            for m in world.sent_to("lead@shop.example")
            if "Support report" in m.message["Subject"]
        ]
        assert auto_submitted(report) == ["auto-generated"]
    finally:
        world.app.close()


@pytest.mark.parametrize("kind", sorted(AUTO_SUBMITTED))
def test_every_kind_of_mail_has_a_test_here(kind: str) -> None:
    """A new kind of mail must come with its own test above (and its line in the table)."""
    names = {
        "ack": "acknowledgement",
        "notification": "staff_notification",
        "staff_error": "command_error",
        "staff_refused": "refused_token",
        "collision": "collision_mail",
        "query": "query_answer",
        "closed": "closed_mail",
        "merged": "merged_notice",
        "reply": "relayed_staff_answer",
        "escalation": "escalation",
        "sla_warning": "deadline_warning",
        "reminder": "waiting_reminder",
        "auto_closed": "auto_closed_mails",
        "digest": "daily_digest",
        "report": "weekly_report",
    }
    assert kind in names, f"no Auto-Submitted test for mail kind {kind!r}"
    assert any(names[kind] in name for name in globals() if name.startswith("test_"))
