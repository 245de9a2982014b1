"""Every mail-derived value is storable on both databases, bounded the same way in writes
and look-ups (db.types); a statement the driver refuses is not an outage; and no error
text repeats a statement's parameters."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from mailbridge.db import queries
from mailbridge.db.engine import make_engine, make_sessionmaker
from mailbridge.db.models import SUBJECT_CHARS, Article, Event, InboundMessage, Ticket
from mailbridge.db.outage import database_outage
from mailbridge.db.types import StorableJSON
from mailbridge.errors import describe_error

pytestmark = pytest.mark.db

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
LONG_ID = "x" * 5_000 + "@customer.example"
UNSTORABLE = "a\x00b\udce9c"  # a NUL character and a lone surrogate (an undecodable byte)


def ticket_with_article(session: Session, **article: object) -> Ticket:
    ticket = queries.insert_now(
        session,
        Ticket(
            subject="S" * 100_000,
            requester_name="N" * 10_000,
            requester_address="r" * 2_000 + "@customer.example",
            mailbox="support",
            queue="support",
            sla_policy="standard",
            created_at=NOW,
            updated_at=NOW,
        ),
    )
    queries.insert_now(
        session,
        Article(
            ticket_id=ticket.id, direction="in", author_kind="customer", created_at=NOW, **article
        ),
    )
    return ticket


def test_overlong_and_unstorable_values_are_stored_bounded(engine: Engine) -> None:
    with make_sessionmaker(engine)() as session, session.begin():
        ticket = ticket_with_article(
            session,
            message_id=LONG_ID,
            in_reply_to=UNSTORABLE,
            from_name=UNSTORABLE * 100,
            subject=UNSTORABLE,
            text_body=UNSTORABLE,
            to=[UNSTORABLE],
            defects=[UNSTORABLE],
        )
        assert len(ticket.subject) == SUBJECT_CHARS, "the object holds what its row holds"
    with make_sessionmaker(engine)() as session:
        ticket = session.scalars(select(Ticket)).one()
        article = session.scalars(select(Article)).one()
    assert (len(ticket.subject), len(ticket.requester_name)) == (SUBJECT_CHARS, 255)
    assert ticket.subject.endswith("S…") and ticket.requester_name.endswith("N…")
    assert len(ticket.requester_address) == 320
    assert article.message_id is not None and len(article.message_id) == 998
    assert article.message_id.startswith("xxx")
    assert (article.in_reply_to, article.subject, article.text_body) == ("a\ufffdb\ufffdc",) * 3
    assert (article.to, article.defects) == (["a\ufffdb\ufffdc"],) * 2
    assert len(article.from_name) == 255 and "\x00" not in article.from_name


def test_a_long_or_unstorable_message_id_is_found_as_it_was_asked(engine: Engine) -> None:
    with make_sessionmaker(engine)() as session, session.begin():
        first = ticket_with_article(session, message_id=LONG_ID)
        second = ticket_with_article(session, message_id=UNSTORABLE)
    asked = [LONG_ID, LONG_ID[:-1] + "y", UNSTORABLE, "<unknown@x.example>"]
    with make_sessionmaker(engine)() as session:
        found = queries.ticket_ids_for_message_ids(session, asked)
    assert found == {LONG_ID: first.id, UNSTORABLE: second.id}


def test_more_message_ids_than_a_statement_takes_are_looked_up(engine: Engine) -> None:
    with make_sessionmaker(engine)() as session, session.begin():
        ticket = ticket_with_article(session, message_id="last@customer.example")
    asked = [f"r{n}@customer.example" for n in range(70_000)] + ["last@customer.example"]
    with make_sessionmaker(engine)() as session:
        assert queries.ticket_ids_for_message_ids(session, asked) == {
            "last@customer.example": ticket.id
        }


def test_json_strings_and_keys_are_storable_through_core_statements(engine: Engine) -> None:
    with make_sessionmaker(engine)() as session, session.begin():
        queries.insert_event(session, None, NOW, "odd", {UNSTORABLE: [UNSTORABLE, 1, None]})
    with make_sessionmaker(engine)() as session:
        event = session.scalars(select(Event)).one()
    assert event.data == {"a\ufffdb\ufffdc": ["a\ufffdb\ufffdc", 1, None]}


def test_an_inbound_message_id_is_compared_as_it_is_stored(engine: Engine) -> None:
    with make_sessionmaker(engine)() as session, session.begin():
        session.add(
            InboundMessage(
                mailbox="support",
                folder="INBOX",
                uidvalidity=1,
                uid=1,
                message_id=LONG_ID,
                fingerprint="f" * 64,
                raw=b"raw",
                size=3,
                received_at=NOW,
                state="new",
                attempts=0,
            )
        )
    with make_sessionmaker(engine)() as session:
        query = select(InboundMessage.id).where(InboundMessage.message_id == LONG_ID)
        assert session.scalar(query) is not None


@pytest.mark.postgres
def test_a_statement_the_driver_refuses_to_send_is_not_an_outage(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    statement = text("SELECT 1 WHERE 1 IN (" + ", ".join(f":p{n}" for n in range(70_000)) + ")")
    with pytest.raises(SQLAlchemyError) as caught, engine.connect() as connection:
        connection.execute(statement, {f"p{n}": n for n in range(70_000)})
    engine.dispose()

    assert "number of parameters" in str(caught.value)
    assert database_outage(caught.value) is None


def test_a_refused_statement_is_described_without_its_values(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE refusing (x VARCHAR(10) UNIQUE, y TEXT)"))
        connection.execute(text("INSERT INTO refusing VALUES ('secret-42', '')"))
    with pytest.raises(SQLAlchemyError) as caught, engine.begin() as connection:
        connection.execute(
            text("INSERT INTO refusing VALUES (:x, :y)"), {"x": "secret-42", "y": "the mail"}
        )
    error = caught.value

    # The engine hides the parameters; PostgreSQL's own DETAIL line names the key, which
    # is why only the first line is ever shown.
    assert "the mail" not in str(error) and "parameters hidden" in str(error)
    assert describe_error(error).startswith("IntegrityError: (")
    assert "secret-42" not in describe_error(error)
    assert database_outage(error) is None


@pytest.mark.parametrize(
    "value",
    [
        {"template": "ack", "context": {"n": 1, "names": ("Ada", "Bo")}, "t": [1.5, None, True]},
        {"text": "Grüße, ½ € and 日本語"},
        {"text": "a\x00b"},  # NUL
        {"a\udce9": ["undecodable byte"]},  # a lone surrogate, in a key
        {"text": "a backslash before u0000: \\u0000, literally"},  # a false alarm
        [{"deep": [[["x\x00"]]]}],
        {1: "an int key", "when": "2026"},
    ],
)
def test_json_is_written_as_bounding_it_would_write_it(value: object) -> None:
    kind = StorableJSON()
    written = kind.process_bind_param(value, sqlite.dialect())
    assert json.dumps(written) == json.dumps(kind.bound(value))
    # What an attribute holds once set is what its row gives back: lists, string keys.
    assert kind.bound(value) == json.loads(json.dumps(written))
