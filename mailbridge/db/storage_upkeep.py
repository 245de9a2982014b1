"""`mailbridge storage check` and `storage migrate`: the files store against the rows that
name its files, and moving bytes between the database and the files.

Both are safe while the daemon runs. `check --fix` removes an orphan (a file no row names)
through the same locked question the purges ask (db/stored_bytes.release), and only once
it is older than the grace period. `migrate` works in batches that each commit on their
own and take the processing turn, so a crash or Ctrl-C loses nothing and a rerun finishes
the job, and no batch interleaves with processing or an erasure.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailbridge.db.blobs import TEMP_PREFIX, BlobError, BlobStore, sha256_of
from mailbridge.db.models import Article, AttachmentRecord, InboundMessage, Ticket
from mailbridge.db.stored_bytes import (
    FILE_STORAGE,
    files_store,
    forget,
    named_among,
    release,
    stage,
)
from mailbridge.db.turn import take_turn

__all__ = ["CheckReport", "MigrateReport", "check", "migrate", "remove_orphans"]

BATCH = 200  # rows per migration transaction: bounded memory, short locks
_SCAN = 1000


@dataclass
class CheckReport:
    rows: int = 0  # rows whose bytes are files
    problems: list[str] = field(default_factory=list)  # rows whose file is missing or damaged
    orphans: int = 0  # files no row names
    orphan_bytes: int = 0
    young: int = 0  # orphans within the grace period, left alone
    removed: int = 0
    leftovers: int = 0  # temporary files of a write that did not finish
    foreign: list[str] = field(default_factory=list)  # files the store did not write


def check(
    sessions: sessionmaker[Session],
    store: BlobStore,
    now: datetime,
    grace: timedelta,
    *,
    fix: bool = False,
) -> CheckReport:
    report = CheckReport()
    seen: dict[str, str | None] = {}
    with sessions() as session:
        for sha256, what in _file_rows(session):
            report.rows += 1
            if sha256 not in seen:
                seen[sha256] = store.verify(sha256)
            if seen[sha256] is not None:
                report.problems.append(f"{what}: file {store.relative(sha256)} {seen[sha256]}")
    _orphans(sessions, store, report, now.timestamp() - grace.total_seconds(), fix)
    return report


def remove_orphans(
    sessions: sessionmaker[Session], store: BlobStore, now: datetime, grace: timedelta
) -> CheckReport:
    """`check --fix` without reading any file: the orphans older than `grace` removed.
    The daemon runs it with the retention purge, so a file whose rows an erasure or a
    purge removed just before a crash goes too, without an operator (the purges remove
    files only after their rows commit)."""
    report = CheckReport()
    _orphans(sessions, store, report, now.timestamp() - grace.total_seconds(), fix=True)
    return report


def _file_rows(session: Session) -> Iterator[tuple[str, str]]:
    """(hash, which row) of every row whose bytes are a file."""
    raws = (
        select(InboundMessage.raw_sha256, InboundMessage.id, Ticket.number)
        .outerjoin(Ticket, Ticket.id == InboundMessage.ticket_id)
        .where(InboundMessage.raw_sha256.is_not(None))
        .order_by(InboundMessage.id)
        .execution_options(yield_per=_SCAN)
    )
    for sha256, row_id, number in session.execute(raws):
        yield (
            sha256 or "",
            f"inbound message {row_id}" + (f" of ticket #{number}" if number else ""),
        )
    attachments = (
        select(AttachmentRecord.sha256, AttachmentRecord.id, Ticket.number)
        .join(Article, Article.id == AttachmentRecord.article_id)
        .join(Ticket, Ticket.id == Article.ticket_id)
        .where(AttachmentRecord.storage == FILE_STORAGE)
        .order_by(AttachmentRecord.id)
        .execution_options(yield_per=_SCAN)
    )
    for sha256, row_id, number in session.execute(attachments):
        yield sha256, f"attachment {row_id} of ticket #{number}"


TEMP_GRACE = 3600.0  # seconds: far beyond any write of one file


def _orphans(
    sessions: sessionmaker[Session], store: BlobStore, report: CheckReport, before: float, fix: bool
) -> None:
    batch: list[tuple[str, float, int]] = []
    for found in store.files():
        if found.sha256 is None:
            if not found.path.name.startswith(TEMP_PREFIX):
                report.foreign.append(str(found.path.relative_to(store.root)))
            elif found.mtime < min(before, time.time() - TEMP_GRACE):
                # A temporary file is removed by age alone, without a lock: never one that
                # may still be being written, whatever --grace says.
                report.leftovers += 1
                if fix:
                    found.path.unlink(missing_ok=True)
            continue
        batch.append((found.sha256, found.mtime, found.size))
        if len(batch) >= _SCAN:
            _judge(sessions, store, report, batch, before, fix)
            batch = []
    _judge(sessions, store, report, batch, before, fix)


def _judge(
    sessions: sessionmaker[Session],
    store: BlobStore,
    report: CheckReport,
    batch: list[tuple[str, float, int]],
    before: float,
    fix: bool,
) -> None:
    with sessions() as session:
        named = named_among(session, [sha for sha, _, _ in batch])
    old = []
    for sha256, mtime, size in batch:
        if sha256 in named:
            continue
        report.orphans += 1
        report.orphan_bytes += size
        if mtime >= before:
            report.young += 1
        else:
            old.append(sha256)
    if fix and old:
        # Asked again under the lock: a writer may have named one since.
        report.removed += release(sessions.kw["bind"], store, old)


@dataclass
class MigrateReport:
    raw: int = 0
    attachments: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)


Target = Literal["files", "database"]


def migrate(sessions: sessionmaker[Session], to: Target, batch: int = BATCH) -> MigrateReport:
    """Move every row's bytes to `to`, a batch per transaction."""
    report = MigrateReport()
    for step in (_raw_batch, _attachment_batch):
        after = 0
        while True:
            with sessions() as session, session.begin():
                take_turn(session)
                after = step(session, to, after, batch, report)
            if after < 0:
                break
    return report


def _raw_batch(session: Session, to: Target, after: int, size: int, report: MigrateReport) -> int:
    """Move one batch of raw mail past id `after`; the last id done, or -1 when none
    were left."""
    held = (
        (InboundMessage.raw_sha256.is_(None) & (func.length(InboundMessage.raw) > 0))
        if to == "files"
        else InboundMessage.raw_sha256.is_not(None)
    )
    rows = session.scalars(
        select(InboundMessage)
        .where(held, InboundMessage.id > after)
        .order_by(InboundMessage.id)
        .limit(size)
        .with_for_update()
    ).all()
    for row in rows:
        what = f"inbound message {row.id}"
        values: dict[str, object]
        if to == "files":
            values = {"raw": b"", "raw_sha256": stage(session, row.raw)}
            report.bytes += len(row.raw)
        else:
            try:
                raw = files_store(session, what).read(row.raw_sha256 or "", what)
            except BlobError as exc:
                report.problems.append(str(exc))
                continue
            values = {"raw": raw, "raw_sha256": None}
            forget(session, [row.raw_sha256])
            report.bytes += len(raw)
        session.execute(update(InboundMessage).where(InboundMessage.id == row.id).values(values))
        report.raw += 1
    session.expunge_all()  # the bytes go with the batch
    return rows[-1].id if rows else -1


def _attachment_batch(
    session: Session, to: Target, after: int, size: int, report: MigrateReport
) -> int:
    held = (
        (AttachmentRecord.storage == "db") & AttachmentRecord.data.is_not(None)
        if to == "files"
        else AttachmentRecord.storage == FILE_STORAGE
    )
    rows = session.scalars(
        select(AttachmentRecord)
        .where(held, AttachmentRecord.id > after)
        .order_by(AttachmentRecord.id)
        .limit(size)
        .with_for_update()
    ).all()
    for row in rows:
        what = f"attachment {row.id}"
        if to == "files":
            data = row.data or b""
            sha256 = stage(session, data, sha256_of(data))
            values: dict[str, object] = {"storage": FILE_STORAGE, "data": None, "sha256": sha256}
        else:
            try:
                data = files_store(session, what).read(row.sha256, what)
            except BlobError as exc:
                report.problems.append(str(exc))
                continue
            values = {"storage": "db", "data": data}
            forget(session, [row.sha256])
        report.bytes += len(data)
        session.execute(
            update(AttachmentRecord).where(AttachmentRecord.id == row.id).values(values)
        )
        report.attachments += 1
    session.expunge_all()
    return rows[-1].id if rows else -1
