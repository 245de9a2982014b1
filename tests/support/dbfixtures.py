"""Database fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL is 127.0.0.1:5432 (override with MAILBRIDGE_TEST_PG); each test gets a fresh
database. Under CI=true it is required; elsewhere its tests skip with a reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support.required import unavailable

PG_ADMIN_URL = os.environ.get(
    "MAILBRIDGE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

_pg_problem: str | None = None
_pg_checked = False


def _postgres_problem() -> str | None:
    """None when PostgreSQL answers, else why not (checked once per session)."""
    global _pg_checked, _pg_problem
    if not _pg_checked:
        _pg_checked = True
        try:
            engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            engine.dispose()
        except Exception as exc:  # noqa: BLE001 - any failure means "not available"
            _pg_problem = (
                f"PostgreSQL at {make_url(PG_ADMIN_URL).host}:5432 "
                f"does not answer ({type(exc).__name__})"
            )
    return _pg_problem


def require_postgres() -> None:
    problem = _postgres_problem()
    if problem is not None:
        unavailable(problem, "PostgreSQL tests")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    require_postgres()
    name = f"mb_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mailbridge.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database of each kind in turn."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))
