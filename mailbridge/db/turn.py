"""The processing turn: one writer of ticket threading at a time, across instances.

Processing (inbound/process.py) takes it for each batch; a command that moves what threading
reads (`tickets merge`, `tickets unmerge`) takes it too, so it never interleaves with a
batch: the batch either sees the merge whole or not at all, and no article is added to a
ticket while it is being merged away. On SQLite the turn is the write lock (`BEGIN
IMMEDIATE`); on PostgreSQL a transaction-level advisory lock.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

# One fixed key, "mb:proc" in ASCII.
PROCESSING_LOCK = int.from_bytes(b"mb:proc", "big")


def take_turn(session: Session) -> None:
    """Wait for any other instance's processing transaction to end; held until this
    transaction ends. Must come first in the transaction (SQLite's BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
    else:
        session.execute(select(func.pg_advisory_xact_lock(PROCESSING_LOCK)))
