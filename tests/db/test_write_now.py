"""Rows written without the unit of work (db.queries insert_now, update_now, insert_event)
behave like flushed ones: ids, defaults, later changes, order, and savepoint rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from mailbridge.db import queries, tally
from mailbridge.db.engine import make_sessionmaker
from mailbridge.db.models import AddressState, Event, Outbox, Tally, Ticket

pytestmark = pytest.mark.db

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def new_ticket(subject: str = "Printer") -> Ticket:
    return Ticket(
        subject=subject,
        requester_address="a@c.example",
        mailbox="support",
        queue="support",
        sla_policy="standard",
        created_at=NOW,
        updated_at=NOW,
    )


def stored(engine: Engine, query: object) -> object:
    with make_sessionmaker(engine)() as session:
        return session.execute(query).all()  # type: ignore[call-overload]


def test_inserted_object_is_persistent_with_id_and_defaults(engine: Engine) -> None:
    with make_sessionmaker(engine)() as session, session.begin():
        ticket = queries.insert_now(session, new_ticket())
        assert ticket.id is not None
        assert (ticket.priority, ticket.status, ticket.escalation_level) == ("normal", "new", 0)
        assert ticket.number is None and ticket.assignee is None  # NULL, known without a query
        assert session.get(Ticket, ticket.id) is ticket
        assert not session.dirty and not session.new
        ticket.status = "open"  # tracked like any loaded object
    assert stored(engine, select(Ticket.status, Ticket.priority)) == [("open", "normal")]


def test_update_now_writes_at_once_and_leaves_the_object_clean(engine: Engine) -> None:
    with make_sessionmaker(engine)() as session, session.begin():
        ticket = queries.insert_now(session, new_ticket())
        queries.update_now(session, ticket, number=1041 + ticket.id, queue="billing")
        assert not session.dirty
        row = session.connection().execute(select(Ticket.number, Ticket.queue)).one()
        assert tuple(row) == (1041 + ticket.id, "billing") == (ticket.number, ticket.queue)


def test_a_rolled_back_savepoint_takes_its_rows_along(engine: Engine) -> None:
    with make_sessionmaker(engine)() as session, session.begin():
        kept = queries.insert_now(session, new_ticket("kept"))
        with pytest.raises(RuntimeError), session.begin_nested():
            lost = queries.insert_now(session, new_ticket("lost"))
            queries.update_now(session, kept, subject="changed, then undone")
            raise RuntimeError("the message failed")
        assert lost not in session
        assert kept.subject == "kept"  # expired, read again
        # The id of the undone row may be handed out again (SQLite does): no clash.
        again = queries.insert_now(session, new_ticket("again"))
        assert session.get(Ticket, again.id) is again
    assert stored(engine, select(Ticket.subject).order_by(Ticket.id)) == [("kept",), ("again",)]


def test_a_committed_savepoint_inside_a_rolled_back_one_is_undone_too(engine: Engine) -> None:
    with make_sessionmaker(engine)() as session, session.begin():
        with pytest.raises(RuntimeError), session.begin_nested():
            with session.begin_nested():
                inner = queries.insert_now(session, new_ticket("inner"))
            raise RuntimeError("the outer part failed")
        assert inner not in session
    assert stored(engine, select(func.count(Ticket.id))) == [(0,)]


def test_events_keep_the_order_they_were_recorded_in(engine: Engine) -> None:
    with make_sessionmaker(engine)() as session, session.begin():
        ticket = queries.insert_now(session, new_ticket())
        session.add(Event(ticket_id=ticket.id, at=NOW, type="first", data={}))  # pending
        queries.insert_event(session, ticket.id, NOW, "second", {"n": 2})
        session.add(Event(ticket_id=ticket.id, at=NOW, type="third", data={}))
    assert stored(engine, select(Event.type, Event.data).order_by(Event.id)) == [
        ("first", {}),
        ("second", {"n": 2}),
        ("third", {}),
    ]


def test_inserted_outbox_row_keeps_json_and_times(engine: Engine) -> None:
    with make_sessionmaker(engine)() as session, session.begin():
        ticket = queries.insert_now(session, new_ticket())
        row = queries.insert_now(
            session,
            Outbox(
                ticket_id=ticket.id,
                kind="ack",
                envelope_from="support@shop.example",
                envelope_to=["a@c.example"],
                message_id="mb.1@shop.example",
                raw=b"x",
                state="pending",
                attempts=0,
                next_attempt_at=NOW,
                created_at=NOW,
            ),
        )
        row_id = row.id
    with Session(engine) as session:
        loaded = session.get_one(Outbox, row_id)
        assert (loaded.envelope_to, loaded.next_attempt_at, loaded.raw) == (
            ["a@c.example"],
            NOW,
            b"x",
        )


def test_counts_gathered_in_a_savepoint_go_in_one_statement_or_not_at_all(
    engine: Engine,
) -> None:
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(str(a[2])))
    with make_sessionmaker(engine)() as session, session.begin():
        with session.begin_nested(), tally.gathered(session):
            tally.add(session, [("tickets_created", (("mailbox", "support"),), 1.0)])
            tally.add(session, [("messages", (("kind", "customer"),), 1.0)])
            tally.add(session, [("messages", (("kind", "customer"),), 2.0)])
            assert not any("tally" in s for s in statements), "nothing written yet"
        rows = session.execute(select(Tally.name, Tally.value).order_by(Tally.id)).all()
        assert rows == [("tickets_created", 1.0), ("messages", 3.0)], "one row per label set"
        with pytest.raises(RuntimeError), session.begin_nested(), tally.gathered(session):
            tally.add(session, [("messages", (("kind", "spam"),), 1.0)])
            raise RuntimeError("this message fails: its counts go with its savepoint")
        tally.add(session, [("messages", (("kind", "customer"),), 1.0)])  # written at once

    assert len([s for s in statements if s.startswith("INSERT INTO tally")]) == 2
    with make_sessionmaker(engine)() as session:
        totals = tally.totals(session)
    assert totals == {
        ("tickets_created", (("mailbox", "support"),)): 1.0,
        ("messages", (("kind", "customer"),)): 4.0,
    }


def test_events_gathered_go_in_one_statement_in_order_and_are_seen_when_read(
    engine: Engine,
) -> None:
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(str(a[2])))
    inserts = lambda: [s for s in statements if s.startswith("INSERT INTO event")]  # noqa: E731
    with make_sessionmaker(engine)() as session, session.begin():
        ticket = queries.insert_now(session, new_ticket())
        with session.begin_nested(), queries.written_later(session):
            queries.insert_event(session, ticket.id, NOW, "first", {})
            queries.insert_event(session, ticket.id, NOW, "second", {})
            assert inserts() == [], "nothing written yet"
            session.add(Event(ticket_id=ticket.id, at=NOW, type="third", data={}))
            queries.insert_event(session, ticket.id, NOW, "fourth", {})
            read = [e.type for e in queries.ticket_events(session, ticket.id)]
            assert read == ["first", "second", "third", "fourth"], "a read sees them all"
            queries.insert_event(session, ticket.id, NOW, "fifth", {})
            queries.insert_event(session, ticket.id, NOW, "sixth", {})
            written = len(inserts())
        assert len(inserts()) == written + 1, "the rest together, when it ends"
        with pytest.raises(RuntimeError), session.begin_nested(), queries.written_later(session):
            queries.insert_event(session, ticket.id, NOW, "rolled back", {})
            raise RuntimeError("this batch fails: its events go with its savepoint")
        queries.insert_event(session, ticket.id, NOW, "seventh", {})  # written at once

    types = stored(engine, select(Event.type).order_by(Event.id))
    assert [t for (t,) in types] == [
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "sixth",
        "seventh",
    ]


def test_the_ledger_read_once_counts_as_the_database_would(engine: Engine) -> None:
    hour = timedelta(hours=1)
    keys = [("mailbox", "support"), ("address", "a@c.example"), ("domain", "c.example")]
    with make_sessionmaker(engine)() as session, session.begin():
        ticket = queries.insert_now(session, new_ticket())
        for minutes in (70, 50, 10):  # one of them outside the hour
            at = NOW - timedelta(minutes=minutes)
            queries.record_acknowledgement(session, ticket, "a@c.example", "c.example", at)
        queries.record_acknowledgement(
            session, ticket, "b@d.example", "d.example", NOW, withheld_by="mailbox"
        )
        outside = [queries.acknowledgements_since_each(session, keys, NOW - hour)]
        statements: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *a: statements.append(str(a[2])))
        with queries.ledger_known(session, NOW - hour):
            inside = [queries.acknowledgements_since_each(session, keys, NOW - hour)]
            queries.record_acknowledgement(session, ticket, "a@c.example", "c.example", NOW)
            reads = len(statements)
            later = NOW + timedelta(minutes=20)  # the row of 50 minutes ago has left the hour
            inside.append(queries.acknowledgements_since_each(session, keys, later - hour))
            assert len(statements) == reads, "counted from what was read"
        outside.append(queries.acknowledgements_since_each(session, keys, later - hour))

    assert outside == inside == [[2, 2, 2], [2, 2, 2]]


def test_the_batchs_senders_and_their_domains_are_read_in_one_statement(engine: Engine) -> None:
    hour = timedelta(hours=1)
    senders = ["a@c.example", "new@c.example", "x@first.example", "'%_\\@odd.example"]
    keys = [
        (limit, key)
        for s in senders
        for limit, key in (("address", s), ("domain", s[s.index("@") + 1 :]))
    ]
    with make_sessionmaker(engine)() as session, session.begin():
        ticket = queries.insert_now(session, new_ticket())
        for minutes in (70, 50, 10):
            at = NOW - timedelta(minutes=minutes)
            queries.record_acknowledgement(session, ticket, "a@c.example", "c.example", at)
        queries.record_acknowledgement(session, ticket, "new@c.example", "c.example", NOW)
        outside = queries.acknowledgements_since_each(session, keys, NOW - hour)
        session.flush()
        statements: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *a: statements.append(str(a[2])))
        with queries.ledger_known(session, NOW - hour, senders):
            assert len(statements) == 1, "one statement for every sender and domain"
            inside = queries.acknowledgements_since_each(session, keys, NOW - hour)
            assert len(statements) == 1, "then counted from what was read"
            queries.acknowledgements_since_each(session, [("mailbox", "support")], NOW - hour)
            assert len(statements) == 2, "a key not read at the start is read when asked"

    assert inside == outside == [2, 3, 1, 3, 0, 0, 0, 0]


def test_the_ledger_forgets_what_a_rolled_back_savepoint_recorded(engine: Engine) -> None:
    """A savepoint per message (SQLite's batches) inside one ledger: a message that fails
    after recording its acknowledgement does not leave it counted for the next."""
    keys = [("mailbox", "support"), ("address", "a@c.example"), ("domain", "c.example")]
    with make_sessionmaker(engine)() as session, session.begin():
        ticket = queries.insert_now(session, new_ticket())
        queries.record_acknowledgement(session, ticket, "a@c.example", "c.example", NOW)
        with queries.ledger_known(session, NOW - timedelta(hours=1)):
            before = queries.acknowledgements_since_each(session, keys, NOW - timedelta(hours=1))
            with pytest.raises(RuntimeError), session.begin_nested():
                queries.record_acknowledgement(session, ticket, "a@c.example", "c.example", NOW)
                raise RuntimeError("the message failed after its acknowledgement")
            after = queries.acknowledgements_since_each(session, keys, NOW - timedelta(hours=1))
            queries.record_acknowledgement(session, ticket, "a@c.example", "c.example", NOW)
            again = queries.acknowledgements_since_each(session, keys, NOW - timedelta(hours=1))

    assert (before, after, again) == ([1, 1, 1], [1, 1, 1], [2, 2, 2])


def outbox_values(ticket_id: int, n: int, **more: object) -> dict[str, object]:
    """An outbox row's values, its defaults (state, attempts) left to the model."""
    return {
        "ticket_id": ticket_id,
        "kind": "ack",
        "envelope_from": "support@shop.example",
        "envelope_to": [f"c{n}@c.example"],
        "message_id": f"<mb.{n}@shop.example>",
        "raw": b"x",
        "next_attempt_at": NOW,
        "created_at": NOW,
        **more,
    }


def outbox_row(ticket_id: int, n: int) -> Outbox:
    return Outbox(**outbox_values(ticket_id, n))


def counting(engine: Engine) -> list[str]:
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(str(a[2])))
    return statements


def test_rows_written_later_go_in_one_statement_each_and_are_seen_when_read(
    engine: Engine,
) -> None:
    with make_sessionmaker(engine)() as session, session.begin():
        tickets = [queries.insert_now(session, new_ticket(f"T{n}")) for n in range(3)]
        statements = counting(engine)
        with session.begin_nested(), queries.written_later(session, expected=3):
            rows = [
                queries.insert_later(session, outbox_row(t.id, n)) for n, t in enumerate(tickets)
            ]
            for n, ticket in enumerate(tickets):
                queries.update_later(session, ticket, number=2000 + n)
            assert [t.number for t in tickets] == [2000, 2001, 2002], "held, and known at once"
            assert all(row.id is not None and row.state == "pending" for row in rows)
            assert session.get(Outbox, rows[0].id) is rows[0]
            writes = [s[:18] for s in statements if s.startswith(("INSERT INTO outbox", "UPDATE"))]
            assert writes == [], "nothing written yet"
            asked = queries.ticket_ids_for_message_ids(session, ["<mb.1@shop.example>"])
            assert asked == {"<mb.1@shop.example>": tickets[1].id}, "a held row is found"
            numbers = session.scalars(select(Ticket.number).order_by(Ticket.id)).all()
            assert numbers == [2000, 2001, 2002], "a read of the table writes what it holds"
            queries.update_later(session, tickets[0], number=3000)
        inserts = [s for s in statements if s.startswith("INSERT INTO outbox")]
        updates = [s for s in statements if s.startswith("UPDATE ticket")]
        assert (len(inserts), len(updates)) == (1, 2)
        assert sorted(r.id for r in rows) == [r.id for r in rows], "ids in the order made"
    found = stored(
        engine, select(Outbox.id, Outbox.attempts, Outbox.envelope_to).order_by(Outbox.id)
    )
    assert found == [(r.id, 0, [f"c{n}@c.example"]) for n, r in enumerate(rows)]
    assert stored(engine, select(Ticket.number).order_by(Ticket.id)) == [(3000,), (2001,), (2002,)]


def test_what_is_written_later_goes_with_a_savepoint_that_rolls_back(engine: Engine) -> None:
    with make_sessionmaker(engine)() as session, session.begin():
        ticket = queries.insert_now(session, new_ticket())
        with session.begin_nested(), queries.written_later(session):
            kept = queries.insert_later(session, outbox_row(ticket.id, 1))
            queries.insert_event(session, ticket.id, NOW, "kept", {})
            with pytest.raises(RuntimeError), session.begin_nested():
                gone = queries.insert_later(session, outbox_row(ticket.id, 2))
                queries.insert_event(session, ticket.id, NOW, "rolled back", {})
                queries.update_later(session, ticket, number=77)
                raise RuntimeError("this part fails: its rows go with its savepoint")
            assert gone not in session
            queries.insert_event(session, ticket.id, NOW, "after", {})
        with pytest.raises(RuntimeError), session.begin_nested(), queries.written_later(session):
            queries.insert_later(session, outbox_row(ticket.id, 3))
            queries.insert_event(session, ticket.id, NOW, "batch failed", {})
            raise RuntimeError("this batch fails: nothing it held is written")
    assert stored(engine, select(Outbox.id)) == [(kept.id,)]
    assert stored(engine, select(Event.type).order_by(Event.id)) == [("kept",), ("after",)]
    assert stored(engine, select(Ticket.number)) == [(None,)]


def test_ids_taken_ahead_never_meet_rows_inserted_otherwise(engine: Engine) -> None:
    """PostgreSQL takes them from the sequence; SQLite has none: there ids follow the
    largest written, and are taken again after an INSERT that did not use them."""
    with make_sessionmaker(engine)() as session, session.begin():
        ticket = queries.insert_now(session, new_ticket())
        with session.begin_nested(), queries.written_later(session):
            first = queries.insert_later(session, outbox_row(ticket.id, 1))
            now = queries.insert_now(session, outbox_row(ticket.id, 2))
            after = queries.insert_later(session, outbox_row(ticket.id, 3))
            session.add(outbox_row(ticket.id, 4))
            session.flush()
            last = queries.insert_later(session, outbox_row(ticket.id, 5))
        ids = [first.id, now.id, after.id, last.id]
        assert len(set(ids)) == 4
        if engine.dialect.name == "sqlite":
            assert ids == sorted(ids)
    assert len(stored(engine, select(Outbox.id))) == 5


def test_an_object_pointing_at_a_held_row_is_written_after_it(engine: Engine) -> None:
    """address_state.last_outbox_id points at outbox: a flush of one waits for nothing."""
    with make_sessionmaker(engine)() as session, session.begin():
        ticket = queries.insert_now(session, new_ticket())
        with session.begin_nested(), queries.written_later(session):
            row = queries.insert_later(session, outbox_row(ticket.id, 1))
            session.add(AddressState(address="c1@c.example", last_outbox_id=row.id, updated_at=NOW))
            session.flush()
    assert stored(engine, select(AddressState.last_outbox_id)) == [(row.id,)]


def test_a_core_read_sees_the_rows_held_of_its_tables(engine: Engine) -> None:
    """The ledger's count is a Core statement (queries._flushed), not an ORM one."""
    hour = timedelta(hours=1)
    with make_sessionmaker(engine)() as session, session.begin():
        ticket = queries.insert_now(session, new_ticket())
        statements = counting(engine)
        with session.begin_nested(), queries.written_later(session):
            queries.record_acknowledgement(session, ticket, "a@c.example", "c.example", NOW)
            queries.record_acknowledgement(session, ticket, "b@c.example", "c.example", NOW)
            assert not [s for s in statements if s.startswith("INSERT INTO acknowledgement")]
            counted = queries.acknowledgements_since(session, "domain", "c.example", NOW - hour)
            assert counted == 2
        inserts = [s for s in statements if s.startswith("INSERT INTO acknowledgement")]
        assert len(inserts) == 1, "both together, when the count needed them"


def test_rows_held_as_values_alone_go_with_the_others_bounded_and_with_their_savepoint(
    engine: Engine,
) -> None:
    """queries.hold_later: a row without its mapped object, as a sweep's notifications."""
    recipe = {"context": {"excerpt": "broken\x00", "names": ("Ada", "Bo")}}
    with make_sessionmaker(engine)() as session, session.begin():
        ticket = queries.insert_now(session, new_ticket())
        outside = queries.hold_later(session, Outbox, outbox_values(ticket.id, 0))
        assert not outside, "outside written_later the caller makes the object"
        statements = counting(engine)
        with session.begin_nested(), queries.written_later(session):
            queries.insert_later(session, outbox_row(ticket.id, 1))
            assert queries.hold_later(session, Outbox, outbox_values(ticket.id, 2, recipe=recipe))
            assert not session.new and len(session.identity_map) == 2, "no object made"
            assert not [s for s in statements if s.startswith("INSERT INTO outbox")]
            seen = session.scalars(select(Outbox.message_id).order_by(Outbox.id)).all()
            assert seen == ["<mb.1@shop.example>", "<mb.2@shop.example>"], "written to be read"
            with pytest.raises(RuntimeError), session.begin_nested():
                queries.hold_later(session, Outbox, outbox_values(ticket.id, 3))
                raise RuntimeError("this part fails: what it held goes with its savepoint")
        inserts = [s for s in statements if s.startswith("INSERT INTO outbox")]
        assert len(inserts) == 1, "both rows in one statement"
    found = stored(engine, select(Outbox.message_id, Outbox.state, Outbox.attempts, Outbox.recipe))
    assert found == [
        ("<mb.1@shop.example>", "pending", 0, None),
        (
            "<mb.2@shop.example>",
            "pending",
            0,
            {"context": {"excerpt": "broken\ufffd", "names": ["Ada", "Bo"]}},
        ),
    ]
