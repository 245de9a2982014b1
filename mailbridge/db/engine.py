"""Engines and sessions: SQLite in WAL mode with foreign keys, or PostgreSQL through psycopg."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from mailbridge.errors import ConfigError


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for `url`; a SQLite file's directory is created when missing. Its errors
    and echo never show statement parameters: they hold mail."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, hide_parameters=True,
                               connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.drivername in ("postgresql", "postgres"):
        url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    connect_args: dict[str, Any] = {}
    if parsed.drivername.startswith("postgres"):  # what the URL sets itself wins
        connect_args = {k: v for k, v in _PG_CONNECT.items() if k not in parsed.query}
    try:
        return create_engine(url, echo=echo, pool_pre_ping=True, hide_parameters=True,
                             connect_args=connect_args)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"database.url needs the {exc.name} driver: install mailbridge[postgres]"
        ) from None


# A server that vanished (host down, cable cut) answers nothing: give up connecting after
# 10 s, and let TCP keepalives end a connection whose peer is gone within about a minute,
# instead of the kernel's two hours. The server side ends our session (and its locks) the
# same way when this host vanishes.
_PG_CONNECT = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "options": "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 "
               "-c tcp_keepalives_count=3",
}


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
