"""Outages are told from bugs on real errors raised by real databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError

from mailbridge.db.engine import make_engine
from mailbridge.db.outage import database_outage
from tests.support.dbfixtures import require_postgres

pytestmark = pytest.mark.db


def _error_of(engine: Engine, *statements: str) -> SQLAlchemyError:
    with pytest.raises(SQLAlchemyError) as caught, engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    return caught.value


def _full_sqlite(path: Path) -> Engine:
    """A SQLite database that may not grow: the real SQLITE_FULL a full disk gives."""
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x BLOB)"))
        pages = connection.execute(text("PRAGMA page_count")).scalar_one()

    def cap(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(engine, "connect", cap)
    engine.dispose()
    return engine


def test_a_full_sqlite_disk_is_an_outage_that_says_so(tmp_path: Path) -> None:
    engine = _full_sqlite(tmp_path / "full.db")
    error = _error_of(engine, "INSERT INTO t VALUES (zeroblob(200000))")
    engine.dispose()

    outage = database_outage(error)

    assert outage is not None and outage.disk_full
    assert "disk is full" in outage.reason


def test_statement_errors_are_not_outages(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE u (x INTEGER PRIMARY KEY)"))
        connection.execute(text("INSERT INTO u VALUES (1)"))

    duplicate = _error_of(engine, "INSERT INTO u VALUES (1)")
    nonsense = _error_of(engine, "SELEKT 1")

    engine.dispose()

    assert database_outage(duplicate) is None
    assert database_outage(nonsense) is None
    assert database_outage(ZeroDivisionError("bug")) is None


def test_a_postgresql_server_that_refuses_connections_is_an_outage() -> None:
    pytest.importorskip("psycopg")
    engine = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:1/postgres", connect_args={"connect_timeout": 2}
    )
    with pytest.raises(SQLAlchemyError) as caught:
        engine.connect()

    outage = database_outage(caught.value)

    assert outage is not None and not outage.disk_full
    assert "refused" in outage.reason


@pytest.mark.postgres
def test_a_connection_the_server_ends_is_an_outage(postgres_url: str) -> None:
    require_postgres()
    engine = make_engine(postgres_url)
    with engine.connect() as victim, engine.connect() as operator:
        pid = victim.execute(text("SELECT pg_backend_pid()")).scalar_one()
        operator.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(SQLAlchemyError) as caught:
            victim.execute(text("SELECT 1"))

    outage = database_outage(caught.value)

    assert outage is not None
    assert "administrator command" in outage.reason
    engine.dispose()
