"""Database fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL is 127.0.0.1:5432 (override with MAILBRIDGE_TEST_PG). Under CI=true it is
required; elsewhere its tests skip with a reason.

`database_url` is a database of each kind at the newest schema with no rows: a copy of a
file migrated once per worker on SQLite; on PostgreSQL a database of the worker's pool,
emptied after each test (its connections ended, every table truncated, every sequence
restarted), or dropped if the test changed its schema. Creating, migrating and dropping a
PostgreSQL database per test took 0.9 s of each. `sqlite_url`, `postgres_url` and
`empty_database_url` are empty databases, for the tests of migrating and creating one.
"""

from __future__ import annotations

import atexit
import gc
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from mailbridge.db import migrate
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
def empty_database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database of each kind in turn (no schema yet)."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A database of each kind in turn, at the newest schema, with no rows."""
    fixture = "migrated_sqlite_url" if request.param == "sqlite" else "migrated_postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def migrated_sqlite_url(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    global _sqlite_template
    if _sqlite_template is None:
        template = tmp_path_factory.mktemp("migrated") / "template.db"
        engine = create_engine(f"sqlite:///{template}", poolclass=NullPool)
        migrate.upgrade(engine)
        engine.dispose()
        _sqlite_template = template
    path = tmp_path / "mailbridge.db"
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite:///{path}"


_sqlite_template: Path | None = None


@pytest.fixture
def migrated_postgres_url() -> Iterator[str]:
    require_postgres()
    name = _pool.pop() if _pool else _new_migrated()
    try:
        yield _url(name)
    finally:
        if _emptied(name):
            _pool.append(name)
        else:
            _drop(name)


_pool: list[str] = []  # this worker's migrated databases, empty, free for the next test
_tables: set[str] = set()  # the tables of a database at the newest schema
_schema: set[tuple[str, str]] = set()  # and all it holds: tables, functions, triggers, indexes


def _url(name: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _admin() -> Engine:
    global _admin_engine
    if _admin_engine is None:
        _admin_engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        atexit.register(_drop_pool)
    return _admin_engine


_admin_engine: Engine | None = None


def _new_migrated() -> str:
    name = f"mb_test_{uuid.uuid4().hex[:12]}"
    with _admin().connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(_url(name), poolclass=NullPool)
    try:
        migrate.upgrade(engine)
        with engine.connect() as connection:
            _tables.update(_public_tables(connection))
            _schema.update(_objects(connection))
    finally:
        engine.dispose()
    return name


def _public_tables(connection: object) -> set[str]:
    query = text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return set(connection.execute(query).scalars())  # type: ignore[attr-defined]


def _objects(connection: object) -> set[tuple[str, str]]:
    """(kind, name) of everything a test could add to or take from the schema."""
    query = text(
        "SELECT 'relation ' || relkind::text, relname::text FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
        "UNION ALL SELECT 'function', proname::text FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' "
        "UNION ALL SELECT 'trigger', tgname::text FROM pg_trigger WHERE NOT tgisinternal"
    )
    return {(kind, name) for kind, name in connection.execute(query)}  # type: ignore[attr-defined]


def _emptied(name: str) -> bool:
    """Empty the database a test used: True, or False if the test changed its schema."""
    with warnings.catch_warnings():  # what the test left open is closed here, in silence
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    with _admin().connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
    engine = create_engine(_url(name), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            if _objects(connection) != _schema:
                return False
            version = connection.execute(text("SELECT version_num FROM alembic_version"))
            if list(version.scalars()) != [migrate.newest_revision()]:
                return False
            tables = ", ".join(f'"{t}"' for t in sorted(_tables - {"alembic_version"}))
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            sequences = text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
            for sequence in connection.execute(sequences).scalars().all():
                connection.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))
        return True
    except Exception:  # noqa: BLE001 - a database the test broke is dropped, not reused
        return False
    finally:
        engine.dispose()


def _drop(name: str) -> None:
    with _admin().connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _drop_pool() -> None:
    while _pool:
        _drop(_pool.pop())
