"""Clock rules on SQLite and PostgreSQL: business-hours deadlines and the promise in the
acknowledgement, the resolution clock pausing while the ticket waits on the customer,
chasers, recomputation on a priority change, and the overdue listings."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest

from mailbridge.app import Step
from mailbridge.cli import tickets as reports
from mailbridge.cli.main import build_parser
from mailbridge.db.models import Ticket
from mailbridge.tickets.deadlines import on_priority_or_queue_change, on_staff_reply
from tests.support.builders import mail
from tests.support.sla_world import START, H, World, make_world, policy, text_of

pytestmark = pytest.mark.db

ROME_OFFICE = {
    "timezone": "Europe/Rome",
    "holidays": "IT",
    "closed": ["2026-12-24"],
    "hours": {day: ["09:00-13:00", "14:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
}
ITALIAN = (
    "Buongiorno,\nvi scrivo perché l'ordine numero 4471 non è ancora arrivato e il "
    "corriere non risponde al telefono. Potete verificare per favore?\n\nGrazie, Giulia\n"
)


def staff_reply(world: World) -> None:
    with world.session() as session:
        on_staff_reply(
            Step(session, world.app, world.now), session.get_one(Ticket, world.ticket().id)
        )


def test_business_hours_deadline_and_the_promise_in_the_customers_language(
    tmp_path: Path, database_url: str
) -> None:
    world = make_world(
        tmp_path,
        database_url,
        calendar=ROME_OFFICE,
        sla=[policy(resolution="40h", business_hours=True)],
    )
    try:
        world.receive(mail("Giulia <giulia@cliente.example>", "Ordine non arrivato", ITALIAN))
        world.advance(H)
        world.receive(mail(subject="Where is my order?"))
        italian, english = world.ticket(1000), world.ticket(1001)
        # Monday 10:00 in Rome + 8 office hours = Tuesday 10:00; the English one an hour later
        assert italian.first_response_due_at == START + 24 * H
        assert english.first_response_due_at == START + 25 * H
        # 40 office hours: a working week later, Monday 30 November at 10:00
        assert italian.resolution_due_at == START + 7 * 24 * H
        _, ack_it = text_of(world.mails("ack")[0])
        _, ack_en = text_of(world.mails("ack")[1])
        assert italian.language == "it"
        assert "entro martedì 24 novembre alle 10:00" in ack_it
        assert "by Tuesday 24 November at 11:00" in ack_en
    finally:
        world.app.close()


def test_a_ticket_arriving_before_a_holiday_weekend(tmp_path: Path, database_url: str) -> None:
    world = make_world(
        tmp_path, database_url, calendar=ROME_OFFICE, sla=[policy(first="2h", business_hours=True)]
    )
    try:
        world.at(timedelta(days=30, hours=7))  # Wednesday 23 December, 17:00 in Rome
        world.receive(mail())
        # Thursday 24 is closed by configuration, 25 and 26 are public holidays, then Sunday
        assert world.ticket().first_response_due_at == START + timedelta(days=35)
    finally:
        world.app.close()


def test_waiting_on_the_customer_pauses_the_resolution_clock(
    tmp_path: Path, database_url: str
) -> None:
    levels = [{"deadline": "resolution", "at": "0"}]
    world = make_world(
        tmp_path, database_url, sla=[policy(first="1h", resolution="10h", levels=levels)]
    )
    try:
        world.receive(mail(message_id="<first@customer.example>"))
        assert world.ticket().next_escalation_at == START + 10 * H
        world.at(2 * H)
        staff_reply(world)
        ticket = world.ticket()
        assert ticket.status == "waiting" and ticket.next_escalation_at is None

        world.at(20 * H)  # long past the resolution deadline, but the clock is stopped
        assert world.sweep() == 0

        world.receive(
            mail(
                subject="Re: Printer on fire",
                in_reply_to="<first@customer.example>",
                message_id="<second@customer.example>",
            )
        )
        ticket = world.ticket()
        assert (ticket.status, ticket.waiting_since) == ("open", None)
        assert ticket.resolution_paused_seconds == 18 * 3600
        assert ticket.resolution_due_at == START + 28 * H
        assert ticket.next_escalation_at == START + 28 * H
        resumed = world.events("sla_resumed")[0].data
        assert resumed["paused_minutes"] == 18 * 60

        world.at(28 * H - timedelta(seconds=1))
        assert world.sweep() == 0
        world.at(28 * H)
        assert world.sweep() == 1
        assert world.fired() == [("resolution", 1)]
        _, text = text_of(world.mails("escalation")[0])
        assert "has not been resolved in time" in text
    finally:
        world.app.close()


def test_waiting_on_business_hours_pauses_only_business_time(
    tmp_path: Path, database_url: str
) -> None:
    world = make_world(
        tmp_path,
        database_url,
        calendar=ROME_OFFICE,
        sla=[policy(first="1h", resolution="16h", business_hours=True)],
    )
    try:
        world.receive(mail(message_id="<first@customer.example>"))
        assert world.ticket().resolution_due_at == START + 48 * H  # Wednesday 10:00 Rome
        world.at(2 * H)  # Monday 12:00
        staff_reply(world)
        world.at(4 * 24 * H)  # Friday 10:00: Mon 12-13, 14-18, Tue-Thu, Fri 9-10 = 30 h
        world.receive(mail(subject="Re: Printer on fire", in_reply_to="<first@customer.example>"))
        ticket = world.ticket()
        assert ticket.resolution_paused_seconds == 30 * 3600
        # 14 office hours were left at Monday 12:00; from Friday 10:00 that is Monday 17:00
        assert ticket.resolution_due_at == START + (7 * 24 + 7) * H
    finally:
        world.app.close()


CHASER_POLICIES = [
    policy("fast", first="2h", priorities=["high", "urgent"]),
    policy("standard", first="8h", chaser={"raise_priority": "high", "shorten_to": "90m"}),
]


def test_a_chaser_is_recorded_raises_the_priority_and_brings_the_deadline_closer(
    tmp_path: Path, database_url: str
) -> None:
    world = make_world(tmp_path, database_url, sla=CHASER_POLICIES)
    try:
        world.receive(mail(message_id="<first@customer.example>"))
        assert world.ticket().sla_policy == "standard"
        world.at(H)
        world.receive(
            mail(
                subject="Re: Printer on fire",
                body="Anyone there?",
                in_reply_to="<first@customer.example>",
            )
        )
        ticket = world.ticket()
        assert [e.type for e in world.events("chaser", "priority_raised", "sla_recomputed")] == [
            "chaser",
            "priority_raised",
            "sla_recomputed",
        ]
        # the high-priority policy applies now: 2 h from the start, earlier than 8 h
        assert (ticket.priority, ticket.sla_policy) == ("high", "fast")
        assert ticket.first_response_due_at == START + 2 * H
        assert ticket.next_escalation_at == START + 2 * H
        assert ticket.status == "new"
        assert len(world.mails("ack")) == 1  # a follow-up is not acknowledged again
    finally:
        world.app.close()


def test_shorten_to_caps_the_pending_deadline(tmp_path: Path, database_url: str) -> None:
    world = make_world(tmp_path, database_url, sla=[policy(chaser={"shorten_to": "90m"})])
    try:
        world.receive(mail(message_id="<first@customer.example>"))
        world.at(H)
        world.receive(mail(subject="Re: Printer on fire", in_reply_to="<first@customer.example>"))
        ticket = world.ticket()
        assert ticket.priority == "normal"
        assert ticket.first_response_due_at == START + 2 * H + 30 * timedelta(minutes=1)
        shortened = world.events("deadline_shortened")[0].data
        assert shortened["due_from"] == (START + 8 * H).isoformat()
        world.at(3 * H)
        assert world.sweep() == 1
    finally:
        world.app.close()


def test_a_priority_change_recomputes_the_running_deadlines(
    tmp_path: Path, database_url: str
) -> None:
    world = make_world(tmp_path, database_url, sla=CHASER_POLICIES)
    try:
        world.receive(mail())
        world.at(H)
        with world.session() as session:
            ticket = session.get_one(Ticket, world.ticket().id)
            ticket.priority = "urgent"
            on_priority_or_queue_change(Step(session, world.app, world.now), ticket)
        ticket = world.ticket()
        assert ticket.sla_policy == "fast"
        assert ticket.first_response_due_at == START + 2 * H
        assert ticket.resolution_due_at == START + 5 * 24 * H
        world.at(2 * H)
        assert world.sweep() == 1
        with world.session() as session:
            ticket = session.get_one(Ticket, world.ticket().id)
            ticket.priority = "low"
            on_priority_or_queue_change(Step(session, world.app, world.now), ticket)
        # back on the 8-hour policy: level 1 fired already and does not fire again
        assert world.ticket().first_response_due_at == START + 8 * H
        world.at(9 * H)
        assert world.sweep() == 0
    finally:
        world.app.close()


def test_overdue_and_due_within_listings(tmp_path: Path, database_url: str) -> None:
    world = make_world(tmp_path, database_url, sla=[policy(first="2h", resolution="1d")])
    try:
        world.receive(mail(subject="Oldest"))
        world.at(H)
        world.receive(mail(subject="Middle"))
        world.at(3 * H + timedelta(minutes=30))
        world.receive(mail(subject="Newest"))
        staff_reply_to = world.ticket(1001)
        with world.session() as session:
            on_staff_reply(
                Step(session, world.app, world.now), session.get_one(Ticket, staff_reply_to.id)
            )

        def listed(**filters: object) -> list[str]:
            out = io.StringIO()
            assert reports.list_tickets(world.app, None, True, out, **filters) == 0  # type: ignore[arg-type]
            return [t["subject"] for t in json.loads(out.getvalue())]

        assert listed(overdue=True) == ["Oldest"]
        assert listed(due_within=2 * H) == ["Newest"]
        assert listed(overdue=True, due_within=2 * H) == ["Oldest", "Newest"]
        world.at(30 * H)  # the answered ticket waits on the customer: its clock is stopped
        assert listed(overdue=True) == ["Oldest", "Newest"]
        out = io.StringIO()
        reports.list_tickets(world.app, None, False, out, overdue=True)
        assert "first response" in out.getvalue() and "late 1 day" in out.getvalue()
        args = build_parser().parse_args(["tickets", "list", "--overdue", "--due-within", "2h"])
        assert (args.overdue, args.due_within) == (True, 2 * H)
    finally:
        world.app.close()
