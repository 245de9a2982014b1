"""A support team whose staff can prove who they are, on the SLA world (tests/support/
sla_world.py): the addresses, the staff configuration, a `world` fixture with one escalation
step, the ticket read back by number, and a staff member's answer to a notification.

Test modules import the `world` fixture by name and list it in `__all__`."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from mailbridge.db import queries
from mailbridge.db.models import Article, Event, Outbox
from mailbridge.inbound.identity import token_address
from tests.support.sla_world import World, make_world, policy

ADA = "ada@customer.example"
BEA = "bea@customer.example"
ALICE = "alice@shop.example"
BOB = "bob@shop.example"
MX = "mx.shop.example"  # the trusted MTA's authserv-id
STAFF: dict[str, Any] = {
    "addresses": [ALICE, BOB],
    "team_address": "team@shop.example",
    "escalation_address": "lead@shop.example",
    "trusted_authserv_id": MX,
}
SIGNED_STAFF = {**STAFF, "signature_patterns": [r"^Alice Bianchi \| Shop"]}
STEPS = [{"at": "0", "notify": "lead@shop.example"}]
_ids = itertools.count()


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    """Staff as STAFF; one policy that tells the lead when the first response is due."""
    made = make_world(tmp_path, database_url, sla=[policy(levels=STEPS)], staff=STAFF)
    yield made
    made.app.close()


def articles_of(world: World, number: int) -> list[Article]:
    with world.app.sessions() as session:
        return list(queries.ticket_articles(session, world.ticket(number).id))


def event_types(world: World, number: int) -> list[str]:
    with world.app.sessions() as session:
        return [e.type for e in queries.ticket_events(session, world.ticket(number).id)]


def event(world: World, number: int, kind: str) -> Event:
    """The ticket's latest event of this kind."""
    with world.app.sessions() as session:
        found = [e for e in queries.ticket_events(session, world.ticket(number).id)]
    return [e for e in found if e.type == kind][-1]


def staff_answer(
    world: World,
    number: int,
    text: str,
    *,
    answered: Outbox | None = None,
    token: bool = True,
) -> bytes:
    """Alice's answer on ticket `number`: threaded to the mail `answered` (None: to no mail
    of ours), with her reply token or (token=False) straight to the support address,
    proving nothing."""
    ticket = world.ticket(number)
    msg = EmailMessage()
    msg["From"] = f"Alice Bianchi <{ALICE}>"
    msg["To"] = (
        token_address(world.app, ticket, ALICE, world.now) if token else "support@shop.example"
    )
    msg["Subject"] = f"Re: [#{number}] {ticket.subject}"
    msg["Date"] = format_datetime(world.now)
    msg["Message-ID"] = f"<staff.{number}.{next(_ids)}@shop.example>"
    if answered is not None:
        msg["In-Reply-To"] = msg["References"] = f"<{answered.message_id}>"
    msg.set_content(text + "\n")
    return msg.as_bytes()
