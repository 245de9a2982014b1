"""Waiting on the customer, through the real processing path and the sweep, on SQLite and
PostgreSQL: the reminder and the automatic close fire once each, the customer's reply
resets the cycle, `#pending [5d]`, business days, a queue's own times, wait_after_question,
and two instances sweeping at once (tickets/waiting.py, core/waiting.py)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mailbridge.app import App, build_app
from mailbridge.cli.tickets import show_ticket
from mailbridge.db.models import Escalation, Outbox
from mailbridge.tickets.escalate import sweep
from mailbridge.tickets.waiting import planned_for
from tests.support.builders import mail
from tests.support.sla_world import START, H, World, make_world, policy, text_of
from tests.support.staff_world import ADA, STAFF, STEPS, event_types, staff_answer

pytestmark = pytest.mark.db

D = timedelta(days=1)
WAITING = {"remind_after": "3d", "close_after": "7d"}
QUESTION = "Hello Ada,\n\ncould you send us the printer's serial number?"


def build(tmp_path: Path, database_url: str, **tickets: Any) -> World:
    return make_world(
        tmp_path,
        database_url,
        sla=[policy(levels=STEPS)],
        staff=STAFF,
        tickets={**WAITING, **tickets},
    )


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    made = build(tmp_path, database_url)
    yield made
    made.app.close()


def answered(world: World, text: str = QUESTION, number: int = 1000) -> None:
    """Ada writes (if the ticket is new), an hour later Alice answers."""
    if not world.tickets():
        world.receive(mail(f"Ada <{ADA}>", "Printer on fire"))
    world.advance(H)
    world.receive(staff_answer(world, number, text))


def customer_writes_again(world: World) -> None:
    world.receive(mail(f"Ada <{ADA}>", "Re: [#1000] Printer on fire", body="Here it is: X-1.\n"))


def kinds(world: World, *wanted: str) -> list[str]:
    return [row.kind for row in world.mails() if row.kind in wanted]


def test_a_reminder_then_the_close_each_once(world: World) -> None:
    answered(world)
    since = world.now
    assert world.ticket().status == "waiting" and world.ticket().pending_since == since
    assert world.ticket().next_escalation_at == since + 3 * D

    world.at(H + 3 * D - timedelta(seconds=1))
    world.sweep()
    assert kinds(world, "reminder", "auto_closed") == []
    world.at(H + 3 * D + 5 * H)  # a late sweep: the close counts from when the reminder went
    world.sweep()
    world.sweep()
    (reminder,) = world.mails("reminder")
    assert reminder.envelope_to == [ADA]
    subject, body = text_of(reminder)
    assert "[#1000]" in subject and "still waiting for your answer" in body
    assert "close the ticket" in body
    ticket = world.ticket()
    assert ticket.status == "waiting" and ticket.reminded_at == world.now
    assert ticket.next_escalation_at == world.now + 7 * D

    world.advance(7 * D - timedelta(seconds=1))
    world.sweep()
    assert world.mails("auto_closed") == []
    world.advance(timedelta(seconds=1))
    assert world.sweep() == 1
    assert world.sweep() == 0
    ticket = world.ticket()
    assert (ticket.status, ticket.resolved_at, ticket.next_escalation_at) == (
        "resolved",
        world.now,
        None,
    )
    (closed,) = world.mails("auto_closed")
    _, body = text_of(closed)
    assert "we have closed ticket [#1000]" in body
    # The two satisfaction links, "yes, solved" and "no, not solved" (tickets/rating.py).
    assert "%2Br1000-good-" in body and "%2Br1000-bad-" in body
    assert event_types(world, 1000).count("reminder_sent") == 1
    assert event_types(world, 1000).count("auto_closed") == 1
    world.advance(30 * D)
    world.sweep()
    assert kinds(world, "reminder", "auto_closed") == ["reminder", "auto_closed"]


def test_the_mails_thread_into_the_customers_conversation(world: World) -> None:
    answered(world)
    (relayed,) = world.mails("reply")
    world.at(H + 3 * D)
    world.sweep()
    (reminder,) = world.mails("reminder")
    assert f"<{relayed.message_id}>" in reminder.raw.decode()
    assert b"Auto-Submitted: auto-generated" in reminder.raw


def test_the_customers_reply_reopens_and_a_later_wait_starts_a_fresh_cycle(world: World) -> None:
    answered(world)
    world.at(H + 3 * D)
    world.sweep()
    assert len(world.mails("reminder")) == 1
    world.advance(D)
    customer_writes_again(world)
    ticket = world.ticket()
    assert ticket.status == "open" and ticket.pending_since is None
    world.advance(20 * D)
    world.sweep()
    assert world.ticket().status == "open", "no close without a new wait"
    assert world.mails("auto_closed") == []

    answered(world, "Thanks. And which firmware does it run?")
    world.advance(3 * D)
    world.sweep()
    world.sweep()
    assert len(world.mails("reminder")) == 2, "a new cycle, a new reminder"
    with world.app.sessions() as session:
        deadlines = session.scalars(select(Escalation.deadline).order_by(Escalation.id)).all()
    waiting = [d for d in deadlines if d.startswith("waiting:")]
    assert len(waiting) == len(set(waiting)) == 2


def test_a_reply_before_the_reminder_cancels_it(world: World) -> None:
    answered(world)
    world.advance(D)
    customer_writes_again(world)
    world.advance(30 * D)
    world.sweep()
    assert kinds(world, "reminder", "auto_closed") == []


def test_pending_with_a_duration_reminds_after_it(world: World) -> None:
    world.receive(mail(f"Ada <{ADA}>", "Printer on fire"))
    world.advance(H)
    world.receive(staff_answer(world, 1000, "#pending 5d"))
    assert world.mails("reply") == [], "a bare #pending tells the customer nothing"
    ticket = world.ticket()
    assert ticket.status == "waiting" and ticket.pending_remind_seconds == 5 * 86400
    reminder, close = planned_for(world.app, ticket)
    assert (reminder, close) == (world.now + 5 * D, world.now + 12 * D)
    (event,) = [e for e in world.events("pending_set")]
    assert event.data["by"] == "alice@shop.example" and event.data["via"] == "mail"
    world.advance(5 * D - timedelta(seconds=1))
    world.sweep()
    assert world.mails("reminder") == []
    world.advance(timedelta(seconds=1))
    world.sweep()
    assert len(world.mails("reminder")) == 1


def test_pending_on_a_waiting_ticket_restarts_the_cycle(world: World) -> None:
    answered(world)
    world.advance(2 * D)
    world.receive(staff_answer(world, 1000, "#pending"))
    world.advance(D + H)
    world.sweep()
    assert world.mails("reminder") == [], "three days from the #pending, not the answer"
    world.advance(2 * D)
    world.sweep()
    assert len(world.mails("reminder")) == 1


def test_a_huge_pending_is_read_as_a_year(world: World) -> None:
    world.receive(mail(f"Ada <{ADA}>", "Printer on fire"))
    world.receive(staff_answer(world, 1000, "#pending 9999w"))
    assert world.ticket().pending_remind_seconds == 366 * 86400


def test_business_days_on_a_business_hours_policy(tmp_path: Path, database_url: str) -> None:
    office = {
        "timezone": "Europe/Rome",
        "hours": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    }
    world = make_world(
        tmp_path,
        database_url,
        sla=[policy(business_hours=True, levels=STEPS)],
        staff=STAFF,
        tickets=WAITING,
        calendar=office,
    )
    try:
        world.receive(mail(f"Ada <{ADA}>", "Printer on fire"))
        friday_4pm_rome = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
        world.at(friday_4pm_rome - START)
        world.receive(staff_answer(world, 1000, QUESTION))
        world.at(friday_4pm_rome + 3 * D - START)  # Monday: three calendar days
        world.sweep()
        assert world.mails("reminder") == []
        wednesday = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
        assert world.ticket().next_escalation_at == wednesday
        world.at(wednesday - START)
        world.sweep()
        assert len(world.mails("reminder")) == 1
    finally:
        world.app.close()


def test_a_queue_has_its_own_times(tmp_path: Path, database_url: str) -> None:
    queues = {"billing": {"remind_after": "1d", "close_after": "0"}}
    world = build(tmp_path, database_url, queues=queues)
    try:
        answered(world, "#queue billing\n\n" + QUESTION)
        assert world.ticket().queue == "billing"
        world.advance(D)
        world.sweep()
        assert len(world.mails("reminder")) == 1
        assert "close the ticket" not in text_of(world.mails("reminder")[0])[1]
        world.advance(60 * D)
        world.sweep()
        assert world.mails("auto_closed") == [] and world.ticket().status == "waiting"
    finally:
        world.app.close()


def test_off_by_default(tmp_path: Path, database_url: str) -> None:
    world = make_world(tmp_path, database_url, sla=[policy(levels=STEPS)], staff=STAFF)
    try:
        answered(world)
        world.advance(60 * D)
        world.sweep()
        assert kinds(world, "reminder", "auto_closed") == []
        assert world.ticket().status == "waiting"
    finally:
        world.app.close()


def test_wait_after_question_waits_only_on_a_question(tmp_path: Path, database_url: str) -> None:
    world = build(tmp_path, database_url, wait_after_question=True)
    try:
        answered(world, "Hello Ada,\n\na new printer is on its way.")
        ticket = world.ticket()
        assert ticket.status == "open" and ticket.first_responded_at is not None
        assert ticket.pending_since is None
        world.receive(staff_answer(world, 1000, "Is it plugged in?\n\n-- \nAlice"))
        assert world.ticket().status == "waiting", "the signature is not the last line"
        world.receive(staff_answer(world, 1000, "Is it plugged in?\n\nAlice"))
        assert world.ticket().status == "waiting", "an answer that asks nothing leaves it"
    finally:
        world.app.close()


def sweep_together(apps: tuple[App, App]) -> list[int]:
    fired: list[int] = []
    barrier = threading.Barrier(2)

    def run(app: App) -> None:
        barrier.wait()
        fired.append(sweep(app))

    threads = [threading.Thread(target=run, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return fired


def test_two_instances_sweeping_at_once_fire_each_step_once(
    tmp_path: Path, database_url: str
) -> None:
    count = 15
    first = build(tmp_path, database_url)
    second = build_app(first.app.config, clock=first.clock)
    try:
        for n in range(count):
            first.receive(mail(f"c{n}@customer.example", f"Ticket {n}"))
        first.advance(H)
        for n in range(count):
            first.receive(staff_answer(first, 1000 + n, QUESTION))
        fired = []
        for offset in (3 * D, 3 * D + 7 * D):
            first.advance(offset - (first.now - START - H))
            fired += sweep_together((first.app, second))
        with first.app.sessions() as session:
            mails = dict(
                session.execute(
                    select(Outbox.kind, func.count())
                    .where(Outbox.kind.in_(("reminder", "auto_closed")))
                    .group_by(Outbox.kind)
                ).all()
            )
        assert mails == {"reminder": count, "auto_closed": count}
        assert all(t.status == "resolved" for t in first.tickets())
        assert len(first.events("reminder_sent")) == len(first.events("auto_closed")) == count
    finally:
        second.close()
        first.app.close()


def test_tickets_show_says_when_the_reminder_and_the_close_are_planned(world: World) -> None:
    answered(world)
    out = io.StringIO()
    show_ticket(world.app, 1000, True, out)
    shown = json.loads(out.getvalue())
    assert shown["reminder_at"] == (world.now + 3 * D).isoformat()
    # The close counts from the reminder: as planned now, and from when it was really sent.
    assert shown["auto_close_at"] == (world.now + 10 * D).isoformat()
    world.advance(3 * D + H)
    world.sweep()
    out = io.StringIO()
    show_ticket(world.app, 1000, False, out)
    assert "reminder_at" not in out.getvalue()
    assert f"auto_close_at: {(world.now + 7 * D).isoformat()}" in out.getvalue()
