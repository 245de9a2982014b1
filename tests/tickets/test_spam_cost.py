"""A spam ticket costs nothing, on both databases: it is in no staff queue, no digest, no
/metrics or `status` figure and no deadline or waiting cycle; `tickets list` and `tickets
search` show it only when asked for with --status spam.

The spam tickets here keep everything they had before they became spam (an assignee,
passed deadlines, a waiting cycle, a due sweep), as a ticket a staff #spam turns into spam
might: every view must leave them out by their status alone."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import select

from mailbridge.cli.status import status_document
from mailbridge.cli.tickets import list_tickets
from mailbridge.db import queries
from mailbridge.db.models import Escalation, Event, Outbox, Ticket
from mailbridge.inbound.digest import send_digests
from mailbridge.service.metrics import DatabaseCollector
from mailbridge.service.snapshot import snapshot
from mailbridge.tickets.search import search_tickets
from mailbridge.tickets.staff_views import listing
from tests.support.builders import mail
from tests.support.sla_world import START, World, make_world, policy, text_of
from tests.support.spam import mark_spam
from tests.support.staff_world import ALICE, STAFF, STEPS

pytestmark = pytest.mark.db

H, DAY = timedelta(hours=1), timedelta(days=1)
SPAMMER = "deals@bulk.example"
TEAM = STAFF["team_address"]


@pytest.fixture
def desk(tmp_path: Path, database_url: str) -> Iterator[World]:
    """1000 spam, the oldest ticket, assigned to Alice; 1001 Ada's ticket, unassigned and
    unanswered; 1002 spam that was waiting on its sender, its reminder due; 1003 Bea's
    ticket, Alice's, answered and waiting on Bea, her reminder due. The clock stands three
    days on: every deadline passed, every sweep due."""
    world = make_world(
        tmp_path,
        database_url,
        sla=[policy(levels=STEPS)],
        staff=STAFF,
        digest={"hour": 8},
        tickets={"remind_after": "1d"},
    )
    world.receive(mail(f"Deals <{SPAMMER}>", "Cheap watches", "Rolex replica watches.\n"))
    world.advance(H)
    world.receive(mail("Ada <ada@customer.example>", "Printer on fire"))
    world.receive(mail(f"Deals <{SPAMMER}>", "Crypto fortune", "Double your crypto.\n"))
    world.receive(mail("Bea <bea@customer.example>", "Invoice question", "Which invoice?\n"))
    waiting = {
        "first_responded_at": START + 2 * H,
        "waiting_since": START + 2 * H,
        "pending_since": START + 2 * H,
    }
    mark_spam(world, 1000, assignee=ALICE)
    mark_spam(world, 1002, **waiting)
    with world.session() as session:
        bea = session.scalars(select(Ticket).where(Ticket.number == 1003)).one()
        bea.status, bea.assignee = "waiting", ALICE
        for name, value in waiting.items():
            setattr(bea, name, value)
    world.at(3 * DAY)
    yield world
    world.app.close()


SPAM, CUSTOMERS = [1000, 1002], [1001, 1003]


def numbers(tickets: Sequence[Ticket]) -> list[int]:
    return [t.number or 0 for t in tickets]


def test_spam_is_in_no_staff_queue(desk: World) -> None:
    with desk.app.sessions() as session:
        lists = {
            kind: numbers(listing(session, kind, ALICE, desk.now).tickets)
            for kind in ("mine", "overdue", "unassigned", "waiting")
        }
    assert lists == {"mine": [1003], "overdue": [1001], "unassigned": [1001], "waiting": [1003]}


def test_spam_counts_in_no_figure_and_is_counted_apart(desk: World) -> None:
    with desk.app.sessions() as session:
        data = snapshot(session, desk.now)
    ada_created = desk.ticket(1001).created_at
    assert (data.unanswered, data.overdue, data.spam) == (1, 1, 2)
    assert data.oldest_unanswered_at == ada_created, "the older spam is not the oldest wait"

    registry = CollectorRegistry(auto_describe=True)
    registry.register(DatabaseCollector(desk.app, min_reuse=0.0))
    lines = set(generate_latest(registry).decode().splitlines())
    assert "mailbridge_unanswered_tickets 1.0" in lines
    assert "mailbridge_spam_tickets 2.0" in lines
    assert 'mailbridge_tickets_opened_total{mailbox="support"} 4.0' in lines
    waited = (desk.now - ada_created).total_seconds()
    assert f"mailbridge_oldest_unanswered_ticket_age_seconds {waited}" in lines

    tickets = status_document(desk.app)["tickets"]
    assert (tickets["unanswered"], tickets["overdue"]) == (1, 1)
    assert tickets["by_status"]["spam"] == 2 and tickets["spam_purged"] == 0
    assert tickets["oldest_unanswered_age_seconds"] == int(waited)


def test_spam_is_in_no_digest(desk: World) -> None:
    assert send_digests(desk.app) == 2  # Alice's and the team's; Bob has nothing open
    sent = {e.data["address"]: e.data["tickets"] for e in desk.events("digest_sent")}
    assert sent == {ALICE: 1, TEAM: 1}
    texts = "\n".join(text_of(row)[1] for row in desk.mails("digest"))
    assert "Printer on fire" in texts and "Invoice question" in texts
    assert "Cheap watches" not in texts and "Crypto fortune" not in texts


def test_the_sweep_fires_nothing_for_spam_and_schedules_nothing(desk: World) -> None:
    spam_ids = [desk.ticket(n).id for n in SPAM]
    mails_before = {n: len(mails_of(desk, n)) for n in SPAM}
    assert all(desk.ticket(n).next_escalation_at is not None for n in SPAM), "as left"

    desk.sweep()

    with desk.app.sessions() as session:
        fired = set(session.scalars(select(Escalation.ticket_id)))
        reminded = session.scalars(
            select(Event.ticket_id).where(Event.type == "reminder_sent")
        ).all()
    assert desk.ticket(1001).id in fired and not fired & set(spam_ids)
    assert not set(reminded) & set(spam_ids)
    assert [r.kind for r in desk.mails("reminder")] == ["reminder"], "Bea is reminded"
    assert {n: len(mails_of(desk, n)) for n in SPAM} == mails_before
    assert [desk.ticket(n).next_escalation_at for n in SPAM] == [None, None]


def mails_of(world: World, number: int) -> list[Outbox]:
    ticket_id = world.ticket(number).id
    return [row for row in world.mails() if row.ticket_id == ticket_id]


def listed(desk: World, status: str | None, **narrowing: object) -> list[int]:
    out = io.StringIO()
    assert list_tickets(desk.app, status, True, out, **narrowing) == 0  # type: ignore[arg-type]
    return [entry["number"] for entry in json.loads(out.getvalue())]


def test_tickets_list_hides_spam_unless_asked_for(desk: World) -> None:
    assert listed(desk, None) == CUSTOMERS
    assert listed(desk, "spam") == SPAM
    assert listed(desk, None, overdue=True) == [1001]
    assert listed(desk, "spam", overdue=True) == [], "spam has no running deadline"
    table = io.StringIO()
    list_tickets(desk.app, None, False, table)
    assert "Cheap watches" not in table.getvalue() and "Printer on fire" in table.getvalue()


def test_search_finds_spam_only_by_its_status(desk: World) -> None:
    with desk.app.sessions() as session:
        assert search_tickets(session, "watches") == []  # `#search` by mail asks like this
        found = search_tickets(session, "watches", status="spam")
        assert [hit.number for hit in found] == [1000]
        assert [hit.number for hit in search_tickets(session, "printer")] == [1001]
        assert search_tickets(session, "printer", status="spam") == []


def test_a_spammers_tickets_are_not_their_open_tickets(desk: World) -> None:
    with desk.app.sessions() as session:
        assert queries.open_tickets_of(session, SPAMMER) == 0
        assert queries.open_tickets_of(session, "ada@customer.example") == 1
