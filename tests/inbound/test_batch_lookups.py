"""What a batch reads once for all its messages (inbound/process.py) stays true while the
batch writes: a sender blocked, an address marked bouncing or a participant joining
inside the batch is seen by the messages after it, and asking about the others costs no
query."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from mailbridge.app import App, Step, build_app
from mailbridge.clock import FrozenClock
from mailbridge.core.bounce import BouncedRecipient
from mailbridge.core.message import Address
from mailbridge.db.models import Outbox, Ticket
from mailbridge.inbound import bounces
from mailbridge.inbound.process import process_pending
from mailbridge.tickets import participants, sender_lists
from tests.support.builders import mail, make_config, stored
from tests.support.sla_world import NOWHERE, START

pytestmark = pytest.mark.db


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[App]:
    built = build_app(
        make_config(tmp_path, database_url=database_url, imap=NOWHERE, smtp=NOWHERE),
        clock=FrozenClock(START),
    )
    yield built
    built.close()


@pytest.fixture
def statements(app: App) -> Iterator[list[str]]:
    seen: list[str] = []
    listener = lambda *args: seen.append(str(args[2]))  # noqa: E731
    event.listen(app.engine, "before_cursor_execute", listener)
    yield seen
    event.remove(app.engine, "before_cursor_execute", listener)


def new_ticket(session: Session) -> Ticket:
    ticket = Ticket(
        subject="s", requester_address="ada@shop.example", mailbox="support",
        queue="support", sla_policy="standard", created_at=START, updated_at=START,
    )  # fmt: skip
    session.add(ticket)
    session.flush()
    return ticket


def test_sender_rules_read_once_and_forgotten_when_one_is_written(
    app: App, statements: list[str]
) -> None:
    with app.transaction() as session:
        sender_lists.block_sender(session, "*@spam.example", "ops", None, START)
    with app.transaction() as session:
        batch = ["eve@spam.example", "ada@shop.example"]
        with sender_lists.rules_known(session, batch):
            statements.clear()
            assert sender_lists.sender_lists(session, app.config, batch[0])[1] == (
                "*@spam.example",
            )
            assert sender_lists.sender_lists(session, app.config, batch[1]) == ((), ())
            assert statements == [], "both answered from what the batch read"
            sender_lists.block_sender(session, "ada@shop.example", "ops", None, START)
            assert sender_lists.sender_lists(session, app.config, batch[1])[1] == (
                "ada@shop.example",
            )


def test_bounce_state_read_once_and_an_address_marked_inside_is_seen(
    app: App, statements: list[str]
) -> None:
    with app.transaction() as session:
        ticket = new_ticket(session)
        outbox = Outbox(
            ticket_id=ticket.id, kind="ack", envelope_from="a@b", envelope_to=["ada@shop.example"],
            message_id="<m@x>", raw=b"", created_at=START, next_attempt_at=START,
        )  # fmt: skip
        session.add(outbox)
        session.flush()
        step = Step(session, app, START)
        failed = BouncedRecipient("bob@shop.example", None, "failed", "5.1.1", "no such user")
        bounces.mark_bouncing(step, "bob@shop.example", failed, outbox.id)
    with app.transaction() as session:
        step = Step(session, app, START)
        batch = ["bob@shop.example", "ada@shop.example"]
        with bounces.states_known(session, batch):
            statements.clear()
            assert bounces.bounce_refusal(session, batch[0]).startswith("address bouncing")
            assert bounces.bounce_refusal(session, batch[1]) == ""
            assert statements == [], "both answered from what the batch read"
            bounces.mark_bouncing(step, "ada@shop.example", failed, outbox.id)
            assert bounces.bounce_refusal(session, "ada@shop.example").startswith(
                "address bouncing"
            )
            assert bounces.clear_bouncing(step, "ada@shop.example")


def test_a_ticket_opened_now_has_no_participants_until_one_joins(
    app: App, statements: list[str]
) -> None:
    with app.transaction() as session:
        ticket = new_ticket(session)
        participants.opened(session, ticket)
        step = Step(session, app, START)
        statements.clear()
        assert participants.cc_of(step, ticket) == []
        assert statements == [], "a ticket opened now: nobody to ask about"
        participants.add(step, ticket, [Address("Bob", "bob@shop.example")], "ops", "mail")
        assert participants.cc_of(step, ticket) == [Address("Bob", "bob@shop.example")]


def test_a_batch_reads_each_acknowledgement_limit_once(app: App, statements: list[str]) -> None:
    """One sender writes eight times in one batch: the hourly counts of her address, her
    domain and the mailbox are read once (and the limit's withheld rows once), not once
    per message (11 reads on SQLite before), and the limit still holds: five acknowledged,
    three withheld."""
    with app.transaction() as session:
        session.add_all(
            stored(mail(subject=f"Question {n}", message_id=f"<q{n}@x>"), uid=n, at=START)
            for n in range(1, 9)
        )
    statements.clear()
    report = process_pending(app)

    counted = ("acknowledgement.at", "count(acknowledgement.id)")  # not db/turn.py's keys
    ledger_reads = [s for s in statements if any(c in s.split("FROM")[0] for c in counted)]
    assert (report.created, report.acknowledged) == (8, app.config.tickets.ack_limit_per_hour)
    assert len(ledger_reads) <= 3, ledger_reads  # her keys, the mailbox's, the withheld rows


def test_a_sender_address_of_any_length_is_looked_up_and_counted(app: App) -> None:
    """The look-ups every message makes take the sender's address as it came (the bounce
    state and the sender rules; the ledger is not asked about an address no mail can be
    written to): one of 2,000 characters, and one that differs from it only past the
    column's 320, still become a ticket each time, in one batch, with nothing failed."""
    local = "a" * 1990
    senders = [f"{local}x@shop.example", f"{local}y@shop.example"]
    with app.transaction() as session:
        session.add_all(
            stored(mail(f"<{s}>", f"Question {n}", message_id=f"<long{n}@x>"), uid=n, at=START)
            for n, s in enumerate(senders * 2, 1)
        )
    report = process_pending(app)

    assert (report.processed, report.created, report.failed) == (4, 4, 0)
