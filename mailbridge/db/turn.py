"""The processing turn: who may write ticket threading when, across instances.

On SQLite the turn is the database's one write lock (`BEGIN IMMEDIATE`): one writer at a
time, as SQLite allows nothing else. On PostgreSQL the turn is narrow
(docs/architecture.md, "Taking turns on PostgreSQL"), in three ranks, always taken in
this order so that no two transactions can wait on each other:

1. the processing lock, shared by every processing batch and taken exclusively by a
   command that moves what threading reads (`tickets merge`, `tickets unmerge`, `tickets
   spam`, erasure, storage upkeep), which so never interleaves with a batch;
2. one mailbox's lock: its messages are claimed and processed in arrival order by one
   batch at a time;
3. the conversation keys of the whole batch (Message-IDs, fingerprints, addresses and
   domains), taken in one statement in one sorted order, so that two batches meeting on a
   conversation wait for each other instead of deciding blind.

Rank 2 and 3 live in the two-integer advisory key space, apart from the 64-bit keys of the
processing lock and of db/stored_bytes.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import Integer

# One fixed key, "mb:proc" in ASCII.
PROCESSING_LOCK = int.from_bytes(b"mb:proc", "big")
MAILBOX_CLASS = 0x6D62_6D78  # "mbmx": a mailbox's lock
CONVERSATION_CLASS = 0x6D62_6376  # "mbcv": a conversation key

_LOCK_KEYS = text(
    "SELECT count(pg_advisory_xact_lock(:class, k)) FROM unnest(:keys) WITH ORDINALITY AS u(k, n)"
).bindparams(bindparam("keys", type_=ARRAY(Integer)))
_SKIPPED = "mailbridge.limits_skipped"  # session.info: full limit keys left unlocked


def take_turn(session: Session) -> None:
    """Wait for every processing batch (and every other such command) to end; held until
    this transaction ends. For commands that change what threading reads. Must come first
    in the transaction (SQLite's BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
    else:
        session.execute(select(func.pg_advisory_xact_lock(PROCESSING_LOCK)))


def share_turn(session: Session, *, alone: bool = False) -> None:
    """PostgreSQL: a processing batch's share of the processing lock, held until the
    transaction ends. `alone` takes it exclusively instead: the single turn of earlier
    versions (`[database] processing_turn = "single"`), which excludes narrow batches too."""
    function = func.pg_advisory_xact_lock if alone else func.pg_advisory_xact_lock_shared
    session.execute(select(function(PROCESSING_LOCK)))


def lock_mailbox(session: Session, mailbox: str, *, wait: bool) -> bool:
    """PostgreSQL: one mailbox's processing lock, until the transaction ends. Without
    `wait`, False at once when another batch holds it."""
    function = func.pg_advisory_xact_lock if wait else func.pg_try_advisory_xact_lock
    got = session.scalar(select(function(MAILBOX_CLASS, key_of("mailbox", mailbox))))
    return wait or bool(got)


def lock_conversations(session: Session, keys: Iterable[tuple[str, str]]) -> None:
    """PostgreSQL: every (kind, value) key at once, in ascending order of its 32-bit form,
    until the transaction ends. Two values that share a form only wait for each other."""
    ordered = sorted({key_of(kind, value) for kind, value in keys})
    if ordered:
        session.execute(_LOCK_KEYS, {"class": CONVERSATION_CLASS, "keys": ordered})


def key_of(kind: str, value: str) -> int:
    """A signed 32-bit advisory key for a value of a kind (mailbox, message, address…)."""
    digest = hashlib.blake2b(f"{kind}\0{value}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def skip_limits(session: Session, skipped: Iterable[tuple[str, str]]) -> None:
    """Note, for this transaction, the acknowledgement limit keys (limit, key) it left
    unlocked because they had reached their limit when the batch began."""
    session.info[_SKIPPED] = frozenset((limit, key.lower()) for limit, key in skipped)


def limit_skipped(session: Session, limit: str, key: str) -> bool:
    """Whether the limit key was left unlocked, full: its acknowledgement stays withheld
    whatever the count says now (an hour's window may have slid a little meanwhile)."""
    skipped: frozenset[tuple[str, str]] = session.info.get(_SKIPPED, frozenset())
    return (limit, key.lower()) in skipped
