"""The schema: migrations and models never drift; SQLite runs in WAL with foreign keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError, StatementError

from mailbridge.db import migrate, revision
from mailbridge.db.engine import make_engine, make_sessionmaker
from mailbridge.db.models import Base, Event, MailboxState, Ticket
from mailbridge.db.search_index import not_search_index

pytestmark = pytest.mark.db


def test_migrations_build_exactly_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "target_metadata": Base.metadata,
                    "include_object": not_search_index,
                },
            )
            differences = compare_metadata(context, Base.metadata)
        assert differences == []
        assert migrate.current_revision(engine) == migrate.newest_revision()
        assert set(inspect(engine).get_table_names()) >= {
            "mailbox_state",
            "inbound_message",
            "ticket",
            "article",
            "attachment",
            "outbox",
            "escalation",
            "event",
        }
    finally:
        engine.dispose()


def test_the_revision_read_without_alembic_is_alembics(empty_database_url: str) -> None:
    """db/revision.py: HEAD is the newest migration, and the row read is the revision
    alembic reads, None before the first migration."""
    assert migrate.newest_revision() == revision.HEAD, "update db/revision.py HEAD"
    engine = make_engine(empty_database_url)
    try:
        assert revision.current_revision(engine) is None
        migrate.upgrade(engine, "0021")
        assert revision.current_revision(engine) == "0021" == migrate.current_revision(engine)
        migrate.upgrade(engine)
        assert revision.current_revision(engine) == revision.HEAD
    finally:
        engine.dispose()


def test_upgrade_twice_is_harmless(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine)
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.newest_revision()
    finally:
        engine.dispose()


def test_times_come_back_as_the_same_instant_in_utc(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    sessions = make_sessionmaker(engine)
    rome = timezone(timedelta(hours=1))
    written = datetime(2026, 3, 29, 2, 30, tzinfo=rome)
    try:
        with sessions() as session, session.begin():
            session.add(
                MailboxState(
                    mailbox="m", folder="INBOX", uidvalidity=1, last_uid=0, updated_at=written
                )
            )
        with sessions() as session:
            read = session.query(MailboxState).one().updated_at
        assert read == written and read.tzinfo == UTC
        with sessions() as session, pytest.raises(StatementError, match="naive"), session.begin():
            session.add(Event(at=datetime(2026, 1, 1), type="naive", data={}))
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    sessions = make_sessionmaker(engine)
    try:
        with pytest.raises(IntegrityError), sessions() as session, session.begin():
            session.add(Event(ticket_id=424242, at=datetime.now(UTC), type="x", data={}))
        assert Ticket.__table__.c.number.unique
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode_and_a_commit_is_on_disk_when_it_returns(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    finally:
        engine.dispose()
