"""`mailbridge db backup PATH`: a consistent copy of a live SQLite database through SQLite's
online backup API; for PostgreSQL, the pg_dump command that does the same."""

from __future__ import annotations

import contextlib
import os
import shlex
import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

from mailbridge.errors import ConfigError, MailbridgeError

__all__ = ["backup"]

BACKUP_MODE = 0o600  # a copy of every ticket and mail: its owner's only


def backup(database_url: str, target: Path) -> str:
    """Copy the database to `target` (which must not exist); returns what to tell the user."""
    url = make_url(database_url)
    if url.drivername.startswith("postgresql") or url.drivername == "postgres":
        plain = url.set(drivername="postgresql")
        command = [
            "pg_dump",
            "--format=custom",
            f"--file={target}",
            f"--dbname={plain.render_as_string(hide_password=True)}",
        ]
        return (
            "PostgreSQL is backed up with its own tool (consistent while mailbridge runs); "
            "the password comes from ~/.pgpass or $PGPASSWORD:\n  " + shlex.join(command)
        )
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        raise ConfigError(f"database.url: cannot back up {url.drivername} databases")
    source = Path(url.database)
    if not source.is_file():
        raise MailbridgeError(f"no database at {source}")
    if target.exists():
        raise MailbridgeError(f"{target} exists already; choose a new file")
    draft = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        _private_file(draft)
        _copy(source, draft)
        draft.rename(target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            draft.unlink()
    return f"{source} copied to {target} ({target.stat().st_size:,} bytes, integrity ok)"


def _private_file(path: Path) -> None:
    """An empty file of BACKUP_MODE, made before SQLite opens it: its mode is then ours and
    not whatever the umask would give."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, BACKUP_MODE)
    except OSError as exc:
        raise MailbridgeError(f"cannot write {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, BACKUP_MODE)
    finally:
        os.close(fd)


def _copy(source: Path, target: Path) -> None:
    try:
        with (
            contextlib.closing(sqlite3.connect(source, timeout=30)) as src,
            contextlib.closing(sqlite3.connect(target)) as dst,
        ):
            # In one step: a read transaction sees one consistent state, and in WAL mode it
            # does not hold up the daemon's writes meanwhile.
            src.backup(dst)
            # A copy that was never checked is a hope, not a backup.
            verdict = dst.execute("PRAGMA integrity_check").fetchone()[0]
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    except sqlite3.Error as exc:
        raise MailbridgeError(f"backing up {source} failed: {exc}") from None
    if verdict != "ok":
        raise MailbridgeError(f"the copy of {source} failed its integrity check: {verdict}")
