"""What a batch reads once (db/queries.py, `batch_reads`; tickets/participants.py,
`rows_known`) stays true for every message of the batch: what the batch itself writes is
added to it, and anything else that changes it makes the batch ask the database again."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest
from sqlalchemy import event, update

from mailbridge.app import App, Step, build_app
from mailbridge.clock import FrozenClock
from mailbridge.core.message import ParsedMessage
from mailbridge.core.parse import parse_message
from mailbridge.db import queries
from mailbridge.db.models import Article, Outbox, Ticket, TicketParticipant
from mailbridge.inbound.process import process_pending
from mailbridge.tickets import participants
from tests.support.builders import mail, make_config, stored
from tests.support.sla_world import NOWHERE, START

pytestmark = pytest.mark.db


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[App]:
    config = make_config(tmp_path, database_url=database_url, imap=NOWHERE, smtp=NOWHERE)
    built = build_app(config, clock=FrozenClock(START))
    yield built
    built.close()


UIDS = count(1)


def store(app: App, *raws: bytes) -> None:
    with app.transaction() as session:
        session.add_all([stored(raw, uid=next(UIDS), at=START) for raw in raws])


def listen(app: App, statements: list[str]) -> None:
    event.listen(app.engine, "before_cursor_execute", lambda *a: statements.append(str(a[2])))


def ticket_of(app: App, message_id: str) -> int:
    """The ticket of the mail whose Message-ID header was `message_id`."""
    bare = message_id.strip("<>")  # as parsed, and stored
    with app.sessions() as session:
        found = queries.ticket_ids_for_message_ids(session, [bare])
    return found[bare]


def one_ticket(app: App) -> int:
    """The ticket one mail, Message-ID <a@x>, opened."""
    store(app, mail("A <a@c.example>", "One", message_id="<a@x>"))
    process_pending(app)
    return ticket_of(app, "<a@x>")


def test_a_reply_in_the_batch_of_the_mail_it_answers_joins_that_mails_ticket(app: App) -> None:
    """The batch reads <q1@x> as unknown before the first mail makes it known."""
    question = mail("Ada <ada@c.example>", "Printer", message_id="<q1@x>")
    again = mail("Ada <ada@c.example>", "Re: Printer", message_id="<q2@x>", in_reply_to="<q1@x>")
    store(app, question, again)
    report = process_pending(app)
    assert (report.processed, report.created) == (2, 1)
    assert ticket_of(app, "<q2@x>") == ticket_of(app, "<q1@x>")


def test_a_message_id_moved_to_another_ticket_in_the_batch_is_read_again(app: App) -> None:
    store(app, mail("A <a@c.example>", "One", message_id="<a@x>"))
    store(app, mail("B <b@c.example>", "Two", message_id="<b@x>"))
    process_pending(app)
    first, second = ticket_of(app, "<a@x>"), ticket_of(app, "<b@x>")
    with app.transaction() as session, queries.batch_reads(session, ["a@x", "b@x"]):
        assert queries.ticket_ids_for_message_ids(session, ["a@x"]) == {"a@x": first}
        session.execute(update(Article).where(Article.ticket_id == first).values(ticket_id=second))
        assert queries.ticket_ids_for_message_ids(session, ["a@x"]) == {"a@x": second}


def test_mail_queued_in_the_batch_is_known_by_its_message_id(app: App) -> None:
    ticket_id = one_ticket(app)
    with (
        app.transaction() as session,
        session.begin_nested(),
        queries.written_later(session),
        queries.batch_reads(session, ["<ours.1@shop.example>"]),
    ):
        assert queries.ticket_ids_for_message_ids(session, ["<ours.1@shop.example>"]) == {}
        queries.insert_later(
            session,
            Outbox(
                ticket_id=ticket_id,
                kind="notify",
                envelope_from="support@shop.example",
                envelope_to=["team@shop.example"],
                message_id="<ours.1@shop.example>",
                raw=b"",
                next_attempt_at=START,
                created_at=START,
            ),
        )
        found = queries.ticket_ids_for_message_ids(session, ["<ours.1@shop.example>"])
        assert found == {"<ours.1@shop.example>": ticket_id}


def test_participants_read_once_show_who_joins_and_leaves(app: App) -> None:
    ticket_id = one_ticket(app)
    with app.transaction() as session:
        session.add(
            TicketParticipant(
                ticket_id=ticket_id, address="bo@c.example", added_at=START, added_by="a@c.example"
            )
        )
    with app.transaction() as session, participants.rows_known(session, [ticket_id]):
        ticket = session.get_one(Ticket, ticket_id)
        statements: list[str] = []
        listen(app, statements)
        assert [p.address for p in participants.active(session, ticket)] == ["bo@c.example"]
        assert statements == [], "read once, before"
        step = Step(session, app, START)
        participants.from_customer_mail(
            step, ticket, parsed_with_cc(app, "a@c.example", "cy@c.example")
        )
        assert [p.address for p in participants.active(session, ticket)] == [
            "bo@c.example",
            "cy@c.example",
        ]
        session.flush()
        gone = session.get_one(TicketParticipant, (ticket_id, "bo@c.example"))
        gone.removed_at = START
        assert [p.address for p in participants.active(session, ticket)] == ["cy@c.example"]


def parsed_with_cc(app: App, sender: str, cc: str) -> ParsedMessage:
    raw = mail(f"A <{sender}>", "Re: One", headers={"Cc": cc}, in_reply_to="<a@x>")
    return parse_message(raw, app.parse_limits)


def test_a_rolled_back_savepoint_lets_go_of_the_locks_read_once(app: App) -> None:
    if app.engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    ticket_id = one_ticket(app)
    statements: list[str] = []
    with app.transaction() as session, queries.batch_reads(session, ["a@x"]):
        listen(app, statements)
        assert queries.locked_ticket(session, ticket_id) is not None
        assert not [s for s in statements if "FOR UPDATE" in s], "locked when read"
        with pytest.raises(RuntimeError), session.begin_nested():
            raise RuntimeError("a savepoint rolls back: PostgreSQL may let go of its locks")
        assert queries.locked_ticket(session, ticket_id) is not None
    assert len([s for s in statements if "FOR UPDATE" in s]) == 1, "locked again"


def test_a_mail_naming_many_tickets_locks_no_more_than_threading_reads(app: App) -> None:
    """A hostile sender lists every Message-ID it knows: the batch locks the tickets of
    the first 16, as threading reads no further to decide (inbound/conversation.py)."""
    if app.engine.dialect.name != "postgresql":
        pytest.skip("the batch reads once on PostgreSQL")
    store(
        app, *[mail(f"C{n} <c{n}@c.example>", f"Q{n}", message_id=f"<m{n}@x>") for n in range(40)]
    )
    process_pending(app)
    refs = " ".join(f"<m{n}@x>" for n in range(40))
    store(app, mail("Eve <eve@evil.example>", "Re: all", headers={"References": refs}))
    locked: list[int] = []

    def counted(
        _conn: object, _cursor: object, statement: str, parameters: object, *_: object
    ) -> None:
        if "FOR UPDATE" in statement and "ticket.id IN (" in statement:
            listed = statement.split("ticket.id IN (", 1)[1].split(")", 1)[0]
            locked.extend(int(n) for n in listed.split(","))

    event.listen(app.engine, "before_cursor_execute", counted)
    try:
        assert process_pending(app).processed == 1
    finally:
        event.remove(app.engine, "before_cursor_execute", counted)
    assert 0 < len(locked) <= 16


def test_only_a_write_to_what_was_read_makes_the_batch_ask_again(app: App) -> None:
    ticket_id = one_ticket(app)
    statements: list[str] = []
    with app.transaction() as session, queries.batch_reads(session, ["a@x"]):
        listen(app, statements)
        session.execute(update(Ticket).where(Ticket.id == ticket_id).values(priority="high"))
        assert queries.ticket_ids_for_message_ids(session, ["a@x"]) == {"a@x": ticket_id}
        assert not [s for s in statements if "FROM article" in s], "a ticket UPDATE changes no id"
        session.execute(update(Outbox).where(Outbox.ticket_id == -1).values(attempts=0))
        assert queries.ticket_ids_for_message_ids(session, ["a@x"]) == {"a@x": ticket_id}
        assert [s for s in statements if "FROM article" in s], "an outbox UPDATE may"
