"""A customer who answers the acknowledgement with "risolto" / "solved" resolves the ticket
without staff time; anything else, or a ticket staff already answered, goes on as usual."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mailbridge.adapters.imap import FetchedMessage
from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.db.models import Event, Ticket
from mailbridge.inbound.fetch import store_raw
from mailbridge.inbound.process import process_pending
from tests.support.builders import mail, make_config
from tests.support.sla_world import NOWHERE, START

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[tuple[App, FrozenClock]]:
    clock = FrozenClock(START)
    app = build_app(
        make_config(tmp_path, database_url=database_url, imap=NOWHERE, smtp=NOWHERE), clock=clock
    )
    yield app, clock
    app.close()


def arrive(app: App, raw: bytes, uid: int) -> None:
    store_raw(app, app.config.mailbox[0], 1, [FetchedMessage(uid, raw, None)], uid)
    process_pending(app)


def ticket_and_events(app: App) -> tuple[Ticket, list[str]]:
    with app.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        kinds = list(
            session.scalars(
                select(Event.type).where(Event.ticket_id == ticket.id).order_by(Event.id)
            )
        )
    return ticket, kinds


def first_mail() -> bytes:
    return mail(
        "Giulia <giulia@cliente.example>",
        "Chiudere il conto",
        "Come posso chiudere il mio conto?",
        message_id="<q1@cliente.example>",
    )


def reply(text: str, n: int) -> bytes:
    return mail(
        "Giulia <giulia@cliente.example>",
        "Re: Chiudere il conto",
        text,
        message_id=f"<r{n}@cliente.example>",
        in_reply_to="<q1@cliente.example>",
    )


def test_risolto_resolves_the_ticket_and_a_later_mail_reopens_it(
    world: tuple[App, FrozenClock],
) -> None:
    app, clock = world
    arrive(app, first_mail(), 1)
    clock.advance(timedelta(minutes=20))
    arrive(app, reply("Risolto, grazie!\n\n> Come posso chiudere il mio conto?\n", 1), 2)

    ticket, kinds = ticket_and_events(app)
    assert (ticket.status, ticket.resolved_at) == ("resolved", clock.now())
    assert ticket.next_escalation_at is None and ticket.first_responded_at is None
    assert kinds[-1] == "resolved_by_customer"

    clock.advance(timedelta(hours=1))
    arrive(app, reply("Scusate, il problema si ripresenta.", 2), 3)
    ticket, _ = ticket_and_events(app)
    assert ticket.status == "open" and ticket.resolved_at is None


@pytest.mark.parametrize(
    "text", ["Non è ancora risolto.", "Risolto? Non mi pare.", "Grazie, attendo una risposta."]
)
def test_a_reply_that_does_not_say_solved_leaves_the_ticket_open(
    world: tuple[App, FrozenClock],
    text: str,
) -> None:
    app, _ = world
    arrive(app, first_mail(), 1)
    arrive(app, reply(text, 1), 2)

    ticket, kinds = ticket_and_events(app)
    assert ticket.status != "resolved" and "resolved_by_customer" not in kinds


def test_once_staff_answered_solved_is_an_ordinary_follow_up(
    world: tuple[App, FrozenClock],
) -> None:
    app, clock = world
    arrive(app, first_mail(), 1)
    with app.transaction() as session:
        session.scalars(select(Ticket)).one().first_responded_at = clock.now()
    arrive(app, reply("Risolto, grazie!", 1), 2)

    ticket, kinds = ticket_and_events(app)
    assert ticket.status != "resolved" and "resolved_by_customer" not in kinds
