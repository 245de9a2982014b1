"""Engines and sessions: SQLite in WAL mode with foreign keys, or PostgreSQL through psycopg."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from mailbridge.errors import ConfigError

# A new SQLite database file: its owner and group only. SQLite gives the -wal and -shm files
# it creates beside it the database file's own mode, whatever the umask.
DATABASE_MODE = 0o640
DIRECTORY_MODE = 0o750


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for `url`; a SQLite file (and its directory) is created when missing. Its
    errors and echo never show statement parameters: they hold mail."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:" and not parsed.query.get("uri"):
            create_private_file(Path(parsed.database))
        engine = create_engine(url, echo=echo, hide_parameters=True, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.drivername in ("postgresql", "postgres"):
        url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    connect_args: dict[str, Any] = {}
    if parsed.drivername.startswith("postgres"):  # what the URL sets itself wins
        connect_args = {k: v for k, v in _PG_CONNECT.items() if k not in parsed.query}
    try:
        return create_engine(
            url, echo=echo, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args
        )
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
    "options": "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3",
}


def create_private_file(path: Path) -> None:
    """An empty file (SQLite takes it for an empty database) with DATABASE_MODE, unless one
    exists already; the directories leading to it are made too."""
    path.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DATABASE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: a commit is on disk before it returns. A stored mail's commit is what lets its
    # IMAP copy leave the INBOX and an MTA drop its copy after LMTP's 250; with NORMAL, WAL
    # mode may lose the last commits to a power cut (invariant 1). It costs 0.35 ms a commit.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
