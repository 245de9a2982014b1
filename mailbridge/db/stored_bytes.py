"""Where a row's bytes are: the one way in and out for raw mail and attachment bytes,
whether they sit in the database or in the files store (db/blobs.py).

Writing: a row whose bytes go to a file is added with its hash and the bytes are staged on
the session; just before the transaction commits, the rows are flushed and the staged
files written and synced. A crash in between leaves at most a file no row names, which
`storage check --fix` removes; never a row without its file.

Removing: code that drops or blanks rows names the hashes it let go (`forget`); after its
commit, each file that no row names any more is removed. Content-addressed files are
shared, so "no row names it" is asked under a lock that also orders it against writers:
on PostgreSQL a per-hash advisory lock (writers take it shared, the remover exclusive);
on SQLite the database's single write lock, which a writer holds from its flush to its
commit and the remover takes before it asks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Engine, bindparam, event, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from mailbridge.core.message import Attachment
from mailbridge.db.blobs import BlobError, BlobStore, sha256_of
from mailbridge.db.models import AttachmentRecord, InboundMessage
from mailbridge.errors import describe_error
from mailbridge.faults import crash_point

__all__ = [
    "FILE_STORAGE",
    "Placement",
    "attachment_bytes",
    "attachment_held",
    "attachment_row",
    "files_store",
    "forget",
    "inbound_message",
    "install",
    "lock_for_writing",
    "named_among",
    "raw_bytes",
    "raw_held",
    "raw_of",
    "release",
]

log = logging.getLogger(__name__)

FILE_STORAGE = "file"  # attachment.storage of one whose bytes are a file
_PLACEMENT = "mailbridge.placement"
_STAGED = "mailbridge.staged"
_FORGOTTEN = "mailbridge.forgotten"
_BATCH = 500


@dataclass(frozen=True)
class Placement:
    """Where new bytes go, and the files store that holds (or will hold) files."""

    store: BlobStore | None = None
    raw_in_files: bool = False
    attachments_in_files: bool = False


def install(maker: sessionmaker[Session], placement: Placement) -> None:
    """Give the sessions of `maker` the placement and the write and remove hooks."""
    maker.kw.setdefault("info", {})[_PLACEMENT] = placement
    event.listen(maker, "before_commit", _write_staged)
    event.listen(maker, "after_commit", _remove_forgotten)
    event.listen(maker, "after_transaction_end", _drop_staged)


def _placement(session: Session) -> Placement:
    found = session.info.get(_PLACEMENT)
    return found if isinstance(found, Placement) else Placement()


def files_store(session: Session, what: str) -> BlobStore:
    store = _placement(session).store
    if store is None:
        raise BlobError(f"{what}: its bytes are a file, and no files directory is set")
    return store


# --- writing ------------------------------------------------------------------------------


def inbound_message(session: Session, row: Mapping[str, Any]) -> InboundMessage:
    """The InboundMessage of `row` (its columns, raw bytes included), with the bytes
    staged as a file when [storage] raw = "files"."""
    placement = _placement(session)
    raw: bytes = row["raw"]
    if not (placement.raw_in_files and raw):
        return InboundMessage(**row)
    sha256 = stage(session, raw)
    return InboundMessage(**{**row, "raw": b"", "raw_sha256": sha256})


def attachment_row(session: Session, article_id: int, attachment: Attachment) -> AttachmentRecord:
    """The attachment's record, its bytes staged as a file when [storage] attachments =
    "files"."""
    record = AttachmentRecord.of(article_id, attachment)
    if _placement(session).attachments_in_files and record.data is not None:
        stage(session, record.data, record.sha256)
        record.storage, record.data = FILE_STORAGE, None
    return record


def stage(session: Session, data: bytes, sha256: str | None = None) -> str:
    """Have `data` written as a file before this session's transaction commits."""
    files_store(session, "staging bytes")
    sha256 = sha256 or sha256_of(data)
    session.info.setdefault(_STAGED, {})[sha256] = data
    return sha256


def _write_staged(session: Session) -> None:
    staged: dict[str, bytes] = session.info.pop(_STAGED, None) or {}
    if not staged:
        return
    # The rows first: on SQLite the flush takes the write lock, which a remover must get
    # before it asks whether a file is named; on PostgreSQL the shared locks do that.
    session.flush()
    _lock_hashes(session, staged, shared=True)
    store = files_store(session, "writing files")
    for sha256, data in staged.items():
        store.put(data, sha256)
    crash_point("after_blob_write")  # files durable, rows not committed yet


def _drop_staged(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the whole unit ended: committed, or rolled back
        session.info.pop(_STAGED, None)
        session.info.pop(_FORGOTTEN, None)


# --- reading ------------------------------------------------------------------------------


def raw_held() -> ColumnElement[bool]:
    """Where a message's raw bytes are still kept, in the row or as a file."""
    return (func.length(InboundMessage.raw) > 0) | InboundMessage.raw_sha256.is_not(None)


def attachment_held() -> ColumnElement[bool]:
    """Where an attachment's bytes are still kept, in the row or as a file."""
    return AttachmentRecord.data.is_not(None) | (AttachmentRecord.storage == FILE_STORAGE)


def raw_bytes(session: Session, raw: bytes, sha256: str | None, what: str) -> bytes:
    """A message's raw bytes from the columns `raw` and `raw_sha256`."""
    if sha256 is None:
        return raw
    return files_store(session, what).read(sha256, what)


def raw_of(session: Session, inbound: InboundMessage) -> bytes:
    what = f"inbound message {inbound.id}"
    if inbound.ticket_id is not None:
        what += f" (ticket id {inbound.ticket_id})"
    return raw_bytes(session, inbound.raw, inbound.raw_sha256, what)


def attachment_bytes(
    session: Session, record: AttachmentRecord, ticket: int | None = None
) -> bytes | None:
    """The attachment's bytes; None when none are kept (skipped, purged, erased)."""
    if record.storage != FILE_STORAGE:
        return record.data
    what = f"attachment {record.id}" + (f" of ticket #{ticket}" if ticket is not None else "")
    return files_store(session, what).read(record.sha256, what)


# --- removing -----------------------------------------------------------------------------


def forget(session: Session, hashes: Iterable[str | None]) -> None:
    """Rows of this transaction let go of these files: after it commits, remove each file
    no row names any more."""
    found = {h for h in hashes if h}
    if found:
        session.info.setdefault(_FORGOTTEN, set()).update(found)


def _remove_forgotten(session: Session) -> None:
    hashes: set[str] = session.info.pop(_FORGOTTEN, None) or set()
    store = _placement(session).store
    if not hashes or store is None:
        return
    crash_point("before_files_released")  # rows gone, files kept: the daemon's sweep
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    try:
        release(engine, store, hashes)
    except Exception as exc:  # noqa: BLE001 - committed rows: a file left is only an orphan
        log.warning(
            "%d file(s) no longer named were left for `storage check --fix` (%s)",
            len(hashes),
            describe_error(exc),
        )


def release(engine: Engine, store: BlobStore, hashes: Iterable[str]) -> int:
    """Remove the files among `hashes` that no row names; returns how many went."""
    removed = 0
    pending = sorted(set(hashes))
    for start in range(0, len(pending), _BATCH):
        batch = pending[start : start + _BATCH]
        with Session(engine) as session, session.begin():
            lock_for_writing(session)
            _lock_hashes(session, batch, shared=False)
            named = named_among(session, batch)
            for sha256 in batch:
                if sha256 not in named:
                    removed += store.remove(sha256)
    return removed


def named_among(session: Session, hashes: Iterable[str]) -> set[str]:
    """Those of `hashes` that some row names as its file."""
    wanted = list(hashes)
    if not wanted:
        return set()
    raws = select(InboundMessage.raw_sha256).where(InboundMessage.raw_sha256.in_(wanted))
    attachments = select(AttachmentRecord.sha256).where(
        AttachmentRecord.storage == FILE_STORAGE, AttachmentRecord.sha256.in_(wanted)
    )
    return {h for h in session.scalars(raws) if h} | set(session.scalars(attachments))


def lock_for_writing(session: Session) -> None:
    """On SQLite, take the database's write lock now (a write that changes nothing), so
    that what this transaction reads stays true until it commits."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("UPDATE attachment SET id = id WHERE 0"))


def _lock_hashes(session: Session, hashes: Iterable[str], *, shared: bool) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({_lock_key(h) for h in hashes})
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    statement = text(
        f"SELECT {function}(k) FROM (SELECT unnest(:keys) AS k ORDER BY 1) AS ordered"
    ).bindparams(bindparam("keys", type_=ARRAY(BigInteger())))
    session.execute(statement, {"keys": keys})


def _lock_key(sha256: str) -> int:
    """A signed 64-bit advisory lock key from the hash's first 16 hex digits."""
    value = int(sha256[:16], 16)
    return value - (1 << 64) if value >= 1 << 63 else value
