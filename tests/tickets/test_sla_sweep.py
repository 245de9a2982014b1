"""The sweep on SQLite and PostgreSQL: each warning and level fires once, in order, with its
notification and event; concurrent sweeps never fire anything twice."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import event, func, select, update

from mailbridge.adapters.templates import default_templates_dir
from mailbridge.app import App, Step, build_app
from mailbridge.db.models import Escalation, Outbox, Ticket
from mailbridge.outbound.send import send_pending
from mailbridge.service.daemon import Daemon
from mailbridge.tickets import escalate
from mailbridge.tickets.deadlines import on_staff_reply
from mailbridge.tickets.escalate import next_due, sweep
from tests.support.builders import mail
from tests.support.sla_world import START, THREE_STEPS, H, World, make_world, policy, text_of

pytestmark = pytest.mark.db


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    made = make_world(tmp_path, database_url, sla=[policy(levels=THREE_STEPS)])
    yield made
    made.app.close()


def test_warning_level_1_and_level_2_fire_once_each_and_in_order(world: World) -> None:
    world.receive(mail())
    assert world.ticket().next_escalation_at == START + 7 * H

    world.at(7 * H - timedelta(seconds=1))
    assert world.sweep() == 0
    world.at(7 * H)
    assert world.sweep() == 1
    assert world.sweep() == 0
    assert world.fired() == [("first_response", -1)]
    assert world.ticket().priority == "normal"
    assert world.ticket().next_escalation_at == START + 8 * H

    world.at(8 * H)
    assert (world.sweep(), world.sweep()) == (1, 0)
    ticket = world.ticket()
    assert (ticket.escalation_level, ticket.priority) == (1, "high")
    assert ticket.next_escalation_at == START + 12 * H

    world.at(12 * H)
    assert (world.sweep(), world.sweep()) == (1, 0)
    world.at(100 * H)
    assert world.sweep() == 0

    ticket = world.ticket()
    assert (ticket.escalation_level, ticket.priority) == (2, "urgent")
    assert ticket.next_escalation_at is None
    assert world.fired() == [("first_response", -1), ("first_response", 1), ("first_response", 2)]
    notices = [row for row in world.mails() if row.kind in ("sla_warning", "escalation")]
    assert [(row.kind, row.envelope_to) for row in notices] == [
        ("sla_warning", ["team@shop.example"]),
        ("escalation", ["lead@shop.example"]),
        ("escalation", ["manager@shop.example"]),
    ]
    warning_subject, warning_text = text_of(notices[0])
    assert "Due in 1 hour" in warning_subject and "[#1000]" in warning_subject
    assert "promised one\nby Monday 23 November at 17:00, in 1 hour" in warning_text  # UTC
    level2_subject, level2_text = text_of(notices[2])
    assert "escalation level 2" in level2_subject
    assert "now 4 hours late" in level2_text and "Priority:  urgent" in level2_text
    events = world.events("sla_warning", "escalated")
    assert [(e.type, e.data["level"], e.at - START) for e in events] == [
        ("sla_warning", -1, 7 * H),
        ("escalated", 1, 8 * H),
        ("escalated", 2, 12 * H),
    ]
    assert events[2].data["priority_from"] == "high"
    assert events[2].data["priority_to"] == "urgent"
    assert events[2].data["notified"] == "manager@shop.example"


def test_a_batch_with_stale_knowledge_fires_only_the_steps_not_fired_elsewhere(
    world: World,
) -> None:
    """The batch records every ticket's first due step in one statement: the rows another
    instance wrote meanwhile are refused there, and only the others fire."""
    world.receive(mail("Ada <ada@c.example>", "Printer", message_id="<p1@x>"))
    world.at(8 * H)
    assert world.sweep() == 1  # Ada's level 1, fired "elsewhere"
    world.receive(mail("Bob <bob@d.example>", "Scanner", message_id="<p2@x>"))
    world.at(16 * H)  # Ada's level 2 and Bob's level 1 are due, and Ada's level 1 again
    with world.session() as session:
        tickets = session.scalars(select(Ticket).order_by(Ticket.id)).all()
        stale = {t.id: set[tuple[str, int]]() for t in tickets}  # read before it fired
        step = Step(session, world.app, world.now)
        assert escalate._sweep_batch(step, tickets, stale, dict.fromkeys(stale, "")) == 2
        session.commit()
    with world.session() as session:
        rows = session.execute(select(Escalation.ticket_id, Escalation.deadline, Escalation.level))
        fired = sorted(tuple(row) for row in rows)
    assert fired == [
        (tickets[0].id, "first_response", 1),
        (tickets[0].id, "first_response", 2),
        (tickets[1].id, "first_response", 1),
    ]
    assert len(world.mails("escalation")) == 3


def test_a_sweep_after_downtime_fires_missed_levels_in_order_and_skips_a_stale_warning(
    world: World,
) -> None:
    world.receive(mail())
    world.at(13 * H)
    assert world.sweep() == 2
    assert world.fired() == [("first_response", 1), ("first_response", 2)]
    assert [e.data["level"] for e in world.events("escalated")] == [1, 2]
    assert world.ticket().priority == "urgent"
    assert world.events("sla_warning") == []


def test_a_staff_reply_before_the_deadline_prevents_escalation(world: World) -> None:
    world.receive(mail())
    world.at(7 * H)
    assert world.sweep() == 1  # the warning
    world.at(7 * H + 30 * timedelta(minutes=1))
    with world.session() as session:
        on_staff_reply(
            Step(session, world.app, world.now), session.get_one(Ticket, world.ticket().id)
        )
    ticket = world.ticket()
    assert ticket.first_responded_at == world.now
    assert (ticket.status, ticket.waiting_since) == ("waiting", world.now)
    assert ticket.next_escalation_at is None

    world.at(48 * H)
    assert world.sweep() == 0
    assert world.fired() == [("first_response", -1)]
    assert world.ticket().escalation_level == 0
    met = world.events("first_response")[0].data
    assert met["late_minutes"] == 0 and met["due_at"] == (START + 8 * H).isoformat()


def test_a_late_staff_reply_stops_the_levels_still_to_come(world: World) -> None:
    world.receive(mail())
    world.at(9 * H)
    assert world.sweep() == 1  # level 1 (the warning is moot by now)
    with world.session() as session:
        on_staff_reply(
            Step(session, world.app, world.now), session.get_one(Ticket, world.ticket().id)
        )
    world.at(20 * H)
    assert world.sweep() == 0
    assert world.fired() == [("first_response", 1)]
    assert world.events("first_response")[0].data["late_minutes"] == 60


def test_a_step_fired_elsewhere_is_not_fired_again(world: World) -> None:
    """A sweep that read the ticket before another instance fired a level (its knowledge of
    what fired is stale) still cannot fire it: the unique row refuses."""
    world.receive(mail())
    world.at(8 * H)
    assert world.sweep() == 1  # level 1; the warning was moot
    with world.session() as session:
        ticket = session.get_one(Ticket, world.ticket().id)
        assert escalate._sweep_ticket(Step(session, world.app, world.now), ticket, set(), "") == 0
    assert world.fired() == [("first_response", 1)]
    assert len(world.mails("escalation")) == 1
    assert [e.data["level"] for e in world.events("escalated")] == [1]


def test_next_due_is_the_earliest_pending_moment(world: World) -> None:
    assert next_due(world.app) is None
    world.receive(mail(subject="First"))
    world.advance(H)
    world.receive(mail(subject="Second"))
    assert next_due(world.app) == START + 7 * H
    world.at(7 * H)
    world.sweep()
    assert next_due(world.app) == START + 8 * H  # the second ticket's warning


def test_the_daemon_also_wakes_at_the_next_due_moment(tmp_path: Path, sqlite_url: str) -> None:
    world = make_world(tmp_path, sqlite_url, sla=[policy(levels=THREE_STEPS)])

    async def scheduled() -> datetime | None:
        daemon = Daemon(world.app)
        scheduler = AsyncIOScheduler()
        scheduler.start(paused=True)  # record, do not run
        daemon._scheduler = scheduler
        try:
            await daemon._wake_at_next_due()
            job = scheduler.get_job("sweep-at-next-due")
            return None if job is None else job.next_run_time  # type: ignore[no-any-return]
        finally:
            scheduler.shutdown(wait=False)

    try:
        assert asyncio.run(scheduled()) is None  # nothing pending: the interval is enough
        world.receive(mail())
        assert asyncio.run(scheduled()) == START + 7 * H  # the warning, to the second
        world.at(7 * H + timedelta(minutes=5))  # overdue already: as soon as possible
        assert asyncio.run(scheduled()) == world.now + timedelta(seconds=1)
    finally:
        world.app.close()


def test_a_template_that_fails_for_one_ticket_fails_its_mail_not_the_sweep(
    tmp_path: Path, database_url: str
) -> None:
    """An `escalation` template that fails for one ticket (the sample context passes, so
    the set went live): the levels still fire, since the mail is rendered when sent; there
    it fails for good with the reason and a `mail_failed` event, and nothing else waits."""
    templates = tmp_path / "templates" / "en"
    shutil.copytree(default_templates_dir(), templates.parent)
    escalation = templates / "escalation.txt.j2"
    escalation.write_text(
        escalation.read_text().replace(
            "{{ ticket_tag }}",
            "{{ ticket_tag }}{% if ticket_number == 1000 %}{{ 1 // 0 }}{% endif %}",
            1,
        )
    )
    world = make_world(
        tmp_path,
        database_url,
        templates={"dir": str(templates.parent)},
        sla=[policy(levels=THREE_STEPS)],
    )
    try:
        world.receive(mail(subject="Late"))
        world.at(7 * H + timedelta(minutes=30))
        world.receive(mail(subject="Early"))  # its warning at 14:30 still works
        world.at(8 * H)
        assert world.sweep() == 1
        assert world.fired() == [("first_response", 1)]
        assert world.ticket(1000).priority == "high"
        with world.session() as session:  # the rest has gone: only the escalation is due
            session.execute(update(Outbox).where(Outbox.kind != "escalation").values(state="sent"))
        report = asyncio.run(send_pending(world.app, draw=lambda: 0.5))
        assert report.failed == 1
        (failed,) = world.mails("escalation")
        assert failed.state == "failed" and "ZeroDivisionError" in (failed.last_error or "")
        told = world.events("mail_failed")
        assert [(e.ticket_id, e.data["outbox_id"]) for e in told] == [(failed.ticket_id, failed.id)]
        world.at(14 * H + timedelta(minutes=30))
        assert world.sweep() == 2  # the first ticket's next level, the second's warning
        assert ("first_response", -1) in world.fired()
    finally:
        world.app.close()


def test_automated_mail_is_never_swept(world: World) -> None:
    world.receive(mail(headers={"Auto-Submitted": "auto-replied"}))
    assert world.ticket().next_escalation_at is None
    world.at(100 * H)
    assert world.sweep() == 0


def test_closed_tickets_cost_the_sweep_nothing(world: World) -> None:
    world.receive(mail())
    with world.session() as session:
        session.execute(update(Ticket).values(status="closed"))
    world.at(8 * H)
    assert world.sweep() == 0  # still due by the index: looked at, nothing fired
    assert world.ticket().next_escalation_at is None
    assert world.fired() == []


# --- two schedulers against one database -------------------------------------------------


def run(app: App, barrier: threading.Barrier, fired: list[int]) -> None:
    barrier.wait()
    fired.append(sweep(app))


@pytest.mark.parametrize("rounds", [3])
def test_concurrent_sweeps_fire_each_escalation_once(
    tmp_path: Path, database_url: str, rounds: int
) -> None:
    count = 40
    first = make_world(tmp_path, database_url, sla=[policy(first="1h", levels=THREE_STEPS)])
    second_app = build_app(first.app.config, clock=first.clock)
    try:
        for n in range(count):
            first.receive(mail(sender=f"c{n}@customer.example", subject=f"Ticket {n}"))
        fired: list[int] = []
        for offset in (0 * H, 1 * H, 5 * H)[:rounds]:
            first.at(offset)
            barrier = threading.Barrier(2)
            threads = [
                threading.Thread(target=run, args=(app, barrier, fired))
                for app in (first.app, second_app)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        with first.app.sessions() as session:
            rows = session.scalar(select(func.count()).select_from(Escalation))
            mails = session.scalar(
                select(func.count())
                .select_from(Outbox)
                .where(Outbox.kind.in_(("sla_warning", "escalation")))
            )
            pending = session.scalar(
                select(func.count())
                .select_from(Ticket)
                .where(Ticket.next_escalation_at.is_not(None))
            )
        assert sum(fired) == rows == mails == 3 * count
        assert pending == 0
    finally:
        second_app.close()
        first.app.close()


def test_a_ticket_failing_mid_batch_is_put_off_and_the_others_fire_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch runs in one savepoint; a ticket that raises sends it round again with a
    savepoint per ticket: the others fire once (one row, one mail, one event each) and the
    failing one is looked at again later."""
    for n in range(3):
        world.receive(mail(f"C{n} <c{n}@c{n}.example>", f"Question {n}", message_id=f"<q{n}@x>"))
    failing = world.tickets()[1].id
    real = escalate._act

    def broken(step: Step, ticket: Ticket, due: object, text: str) -> None:
        if ticket.id == failing:
            raise ZeroDivisionError("a bug on one ticket")
        real(step, ticket, due, text)  # type: ignore[arg-type]

    monkeypatch.setattr(escalate, "_act", broken)
    world.at(8 * H)

    assert world.sweep() == 2
    assert len(world.mails("escalation")) == 2
    assert len(world.events("escalated")) == 2
    with world.session() as session:
        rows = session.execute(select(Escalation.ticket_id)).scalars().all()
        put_off = session.get_one(Ticket, failing).next_escalation_at
    assert sorted(rows) == sorted(t.id for t in world.tickets() if t.id != failing)
    assert put_off == world.now + escalate.RETRY_AFTER_FAILURE


def test_a_sweep_costs_a_bounded_number_of_statements_per_fired_level(world: World) -> None:
    """Per ticket, its notification; the batch's escalation rows, events, counts, who is
    away and the tickets' UPDATEs are written or read once. A savepoint, a look-up
    or a flush per ticket coming back fails here, whatever the machine's speed."""
    n = 12
    for i in range(n):
        world.receive(mail(f"C{i} <c{i}@c{i}.example>", f"Question {i}", message_id=f"<s{i}@x>"))
    world.at(8 * H)
    statements: list[str] = []
    listener = lambda *args: statements.append(str(args[2]).split()[0])  # noqa: E731
    event.listen(world.app.engine, "before_cursor_execute", listener)
    try:
        assert world.sweep() == n
    finally:
        event.remove(world.app.engine, "before_cursor_execute", listener)
    # Measured: 13 for the batch, 14 on SQLite (24 on SQLite and 25 on PostgreSQL when
    # each notification was an INSERT of its own, 35 when each escalation row was one too,
    # 136–137 before one savepoint per batch): the escalation rows, notifications, events
    # and counts one INSERT each.
    assert len(statements) <= 14, statements
    assert statements.count("INSERT") == 4, "rows together"
    assert statements.count("SAVEPOINT") == 1


def test_due_tickets_beyond_one_batch_fire_in_the_next_ones(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep goes on, a batch (one transaction) at a time, until a batch comes back
    short: 7 due tickets in batches of 3 are 3 + 3 + 1, each fired once."""
    monkeypatch.setattr(escalate, "BATCH", {"sqlite": 3, "postgresql": 3})
    for i in range(7):
        world.receive(mail(f"C{i} <c{i}@c{i}.example>", f"Question {i}", message_id=f"<b{i}@x>"))
    world.at(8 * H)
    commits: list[object] = []

    def committed(connection: object) -> None:
        commits.append(connection)

    event.listen(world.app.engine, "commit", committed)
    try:
        assert world.sweep() == 7
    finally:
        event.remove(world.app.engine, "commit", committed)
    assert len(commits) == 3, "one transaction per batch"
    assert world.sweep() == 0
    with world.session() as session:
        rows = session.execute(select(Escalation.ticket_id)).scalars().all()
    assert sorted(rows) == sorted(t.id for t in world.tickets())
