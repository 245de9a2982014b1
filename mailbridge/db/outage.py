"""Tell a database that cannot be used right now from a bug.

An unreachable or restarting server, a dropped connection, a full disk or a lock held too
long are outages: the work waits and is tried again, unchanged, once the database answers
(mail stays on the IMAP server, rows stay in the outbox). Anything else is a failure of the
work itself and is handled as such (retried a few times, then quarantined): a statement
the database, or its driver, refuses is never an outage, or one message could hold up all.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from mailbridge.errors import one_line

__all__ = ["Outage", "database_outage", "database_place"]

# SQLite result codes (https://sqlite.org/rescode.html) that say "not now", not "never".
_SQLITE_TRANSIENT = {
    5: "the database is locked by another process",  # SQLITE_BUSY, after busy_timeout
    6: "a table is locked",  # SQLITE_LOCKED
    10: "a disk I/O error",  # SQLITE_IOERR
    13: "the disk is full",  # SQLITE_FULL, also PRAGMA max_page_count reached
    14: "the database file cannot be opened",  # SQLITE_CANTOPEN
}
# PostgreSQL SQLSTATE classes and codes that mean the server, not the statement, is at fault.
_PG_CLASSES = {
    "08": "the connection to PostgreSQL failed",  # connection exception
    "53": "PostgreSQL is out of resources",  # insufficient resources (53100 disk full)
    "57": "PostgreSQL is shutting down or restarting",  # operator intervention
    "58": "PostgreSQL reported a system error",  # system error (I/O)
}


@dataclass(frozen=True, slots=True)
class Outage:
    reason: str  # one line, for logs and /healthz
    disk_full: bool = False


def database_outage(error: BaseException) -> Outage | None:
    """An Outage when `error` says the database cannot be used for now, else None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _classify(current)
        if found is not None:
            return found
        following = current.__cause__ or current.__context__
        driver = current.orig if isinstance(current, sa_exc.DBAPIError) else None
        if driver is not None and following is driver:
            # Judged with its statement already: what it arose from (a SQLite savepoint
            # gone with a full disk) is judged next.
            following = driver.__cause__ or driver.__context__
        current = following
    return None


def database_place(url: str) -> str:
    """Where the database is, for a log line: the SQLite file, or the server without the
    password."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        return str(parsed.database or "memory")
    return parsed.render_as_string(hide_password=True)


def _classify(error: BaseException, *, sent: bool = False) -> Outage | None:
    """`sent`: the error answers a statement on a connection that is still good."""
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return Outage(f"the database connection was lost: {_first_line(error.orig)}")
        if error.orig is None:
            return None
        return _classify(error.orig, sent=error.statement is not None)
    if isinstance(error, sa_exc.TimeoutError):  # every pooled connection busy for too long
        return Outage(f"no database connection became free: {_first_line(error)}")
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary in _SQLITE_TRANSIENT:
            return Outage(
                f"SQLite: {_SQLITE_TRANSIENT[primary]} ({_first_line(error)})",
                disk_full=primary == 13,
            )
        return None
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate[:2] in _PG_CLASSES:
        return Outage(
            f"{_PG_CLASSES[sqlstate[:2]]}: {_first_line(error)}", disk_full=sqlstate == "53100"
        )
    # Without a SQLSTATE, psycopg could not reach the server, or refused to send a statement
    # (one with more than 65,535 parameters): only the first is an outage. A connection
    # lost mid-statement is told by SQLAlchemy, as connection_invalidated.
    if (
        not sent
        and type(error).__module__.startswith("psycopg")
        and type(error).__name__
        in (
            "OperationalError",
            "InterfaceError",
        )
    ):
        return Outage(f"PostgreSQL cannot be reached: {_first_line(error)}")
    return None


def _first_line(error: BaseException | None) -> str:
    """The error's message without its class name (the reason says what failed)."""
    if error is None:
        return "no further detail"
    text = str(error).strip()
    return one_line(text, 200) if text else type(error).__name__
