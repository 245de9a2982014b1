"""tickets/participants.py on SQLite and PostgreSQL: add, remove, none, add again, each an
event; and queries.participants, which threading asks, follows the active list."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from mailbridge.app import App, Step
from mailbridge.clock import FrozenClock
from mailbridge.core.message import Address
from mailbridge.db import queries
from mailbridge.db.models import Event, Ticket, TicketParticipant
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.service.daemon import Daemon
from mailbridge.tickets import participants
from tests.support.builders import mail
from tests.support.served_app import app, app_sections, clock
from tests.support.staff_world import ADA

pytestmark = pytest.mark.integration

__all__ = ["app", "app_sections", "clock"]  # the fixtures these tests use

EVA = "eva@customer.example"
CLI = participants.VIA_COMMAND_LINE


@pytest.fixture(autouse=True)
def adas_ticket(app: App, imap_server: EmbeddedImapServer) -> None:
    """#1000, Ada's, opened by a daemon pass before each test."""
    imap_server.append(mail(f"Ada <{ADA}>", message_id="<p1@customer.example>"))
    report = asyncio.run(Daemon(app).run_once())
    assert report.ok and report.processed.created == 1


def change(app: App, clock: FrozenClock, what: str, *addresses: str) -> list[str]:
    clock.advance(timedelta(minutes=1))
    with app.transaction() as session:
        ticket = session.scalars(select(Ticket)).one()
        step = Step(session, app, clock.now())
        if what == "add":
            return participants.add(step, ticket, [Address("", a) for a in addresses], CLI, CLI)
        if what == "remove":
            return participants.remove(step, ticket, list(addresses), CLI, CLI)
        return participants.remove_all(step, ticket, CLI, CLI)


def state(app: App) -> tuple[list[str], frozenset[str], list[dict[str, object]]]:
    """Active participants, who threading counts as on the ticket, and the events."""
    with app.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        active = [p.address for p in participants.active(session, ticket)]
        on_ticket = queries.participants(session, ticket)
        changes = session.scalars(
            select(Event.data).where(Event.type == "participants_changed").order_by(Event.id)
        ).all()
    return active, on_ticket, list(changes)


def test_add_remove_none_and_add_again(app: App, clock: FrozenClock) -> None:
    assert change(app, clock, "add", EVA, "Bo@Partner.Example") == [EVA, "bo@partner.example"]
    assert change(app, clock, "add", EVA) == [], "already there: no change, no event"
    active, on_ticket, changes = state(app)
    assert active == ["bo@partner.example", EVA]  # joined together: by address
    assert on_ticket == {ADA, EVA, "bo@partner.example"}
    assert changes == [{"by": CLI, "via": CLI, "added": [EVA, "bo@partner.example"], "removed": []}]

    assert change(app, clock, "remove", EVA, "nobody@x.example") == [EVA]
    active, on_ticket, _ = state(app)
    assert active == ["bo@partner.example"] and EVA not in on_ticket

    assert change(app, clock, "none") == ["bo@partner.example"]
    assert change(app, clock, "none") == []
    active, on_ticket, changes = state(app)
    assert active == [] and on_ticket == {ADA}
    assert len(changes) == 3

    assert change(app, clock, "add", EVA) == [EVA], "staff bring a removed address back"
    with app.sessions() as session:
        row = session.scalars(
            select(TicketParticipant).where(TicketParticipant.address == EVA)
        ).one()
    assert row.removed_at is None and row.added_at == clock.now() and row.added_by == CLI


def test_an_active_participants_subject_tag_threads_and_a_removed_ones_does_not(
    app: App, clock: FrozenClock, imap_server: EmbeddedImapServer
) -> None:
    change(app, clock, "add", EVA, "bo@partner.example")
    change(app, clock, "remove", "bo@partner.example")
    imap_server.append(mail(f"Eva <{EVA}>", "[#1000] from the office too", message_id="<e1@x>"))
    imap_server.append(mail("bo@partner.example", "[#1000] me too", message_id="<b1@x>"))
    report = asyncio.run(Daemon(app).run_once())
    assert report.ok
    with app.sessions() as session:
        numbers = session.scalars(select(Ticket.number).order_by(Ticket.id)).all()
        tagged = session.scalars(select(Event.data).where(Event.type == "tag_ignored")).all()
    assert numbers == [1000, 1001], "Eva joined #1000; Bo, removed, opened a ticket of his own"
    assert len(tagged) == 1
