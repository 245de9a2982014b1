"""Retention: tickets closed longer ago than `retention.purge_after` lose the bulky and
personal parts the policy names (raw mail, attachment bytes, sent mail, HTML, text); the
ticket, its articles' metadata and its audit events stay, with an event saying what went.

Mail that made no ticket (ignored automated mail) loses its raw bytes on the same schedule,
counted from its arrival. Quarantined mail is never purged: it waits for a person.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    Select,
    Update,
    case,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session

from mailbridge.app import App
from mailbridge.config import PurgeKind
from mailbridge.core.states import CLOSED_STATUSES, InboundState, OutboxState
from mailbridge.db.models import Article, AttachmentRecord, Event, InboundMessage, Outbox, Ticket
from mailbridge.db.stored_bytes import FILE_STORAGE, attachment_held, forget, raw_held

log = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True, slots=True)
class PurgeReport:
    cutoff: datetime | None = None
    tickets: int = 0
    raw: int = 0
    raw_bytes: int = 0
    attachments: int = 0
    attachments_bytes: int = 0
    outbox: int = 0
    outbox_bytes: int = 0
    html: int = 0
    text: int = 0
    unattached: int = 0  # raw mail of messages that made no ticket
    unattached_bytes: int = 0

    @property
    def anything(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self) if f.name != "cutoff")

    def __add__(self, other: PurgeReport) -> PurgeReport:
        return PurgeReport(
            self.cutoff or other.cutoff,
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)[1:]),
        )

    def summary(self) -> str:
        parts = [
            f"{self.tickets} ticket(s) closed before {_day(self.cutoff)}",
            f"{self.raw} raw message(s) ({_size(self.raw_bytes)})",
            f"{self.attachments} attachment(s) ({_size(self.attachments_bytes)})",
            f"{self.outbox} sent mail(s) ({_size(self.outbox_bytes)})",
        ]
        if self.html:
            parts.append(f"{self.html} HTML bod{'y' if self.html == 1 else 'ies'}")
        if self.text:
            parts.append(f"{self.text} article text(s)")
        parts.append(
            f"{self.unattached} message(s) without a ticket ({_size(self.unattached_bytes)})"
        )
        return ", ".join(parts)


def purge(app: App, *, dry_run: bool = False, now: datetime | None = None) -> PurgeReport:
    """Apply the retention policy (or, with dry_run, count what it would remove)."""
    policy = app.config.retention
    if policy.purge_after is None:
        return PurgeReport()
    cutoff = (now or app.clock.now()) - policy.purge_after
    kinds = frozenset(policy.purge)
    total = PurgeReport(cutoff)
    after = 0
    while True:
        with app.transaction() as session:
            ids = _closed_before(session, cutoff, after)
            if not ids:
                break
            total += _purge_tickets(session, ids, kinds, cutoff, dry_run, app.clock.now())
        after = ids[-1]
    if "raw" in kinds:
        with app.transaction() as session:
            total += _purge_unattached(session, cutoff, dry_run)
    if total.anything and not dry_run:
        log.info("retention: purged %s", total.summary())
    return total


def _closed_before(session: Session, cutoff: datetime, after: int) -> Sequence[int]:
    # The same notion of "closed at" as the reopen window uses.
    closed_at = func.coalesce(Ticket.resolved_at, Ticket.updated_at)
    return session.scalars(
        select(Ticket.id)
        .where(Ticket.status.in_(CLOSED_STATUSES), closed_at < cutoff, Ticket.id > after)
        .order_by(Ticket.id)
        .limit(BATCH)
    ).all()


def _purge_tickets(
    session: Session,
    ids: Sequence[int],
    kinds: frozenset[PurgeKind],
    cutoff: datetime,
    dry_run: bool,
    now: datetime,
) -> PurgeReport:
    tally = _Tally()
    for kind, step in _STEPS.items():
        if kind in kinds:
            counting, clearing, files = step(ids)
            tally.add(kind, [tuple(row) for row in session.execute(counting)])
            if not dry_run:
                if files is not None:  # removed after the commit, unless named elsewhere
                    forget(session, session.scalars(files))
                session.execute(clearing.execution_options(synchronize_session=False))
    if not dry_run:
        for ticket_id, what in tally.tickets.items():
            session.add(
                Event(
                    ticket_id=ticket_id,
                    at=now,
                    type="purged",
                    data={"closed_before": cutoff.isoformat(), **what},
                )
            )
    return tally.report()


# Each step: (ticket id, count, bytes) of what it would clear for a batch of tickets, the
# statement that clears it, and the hashes of the files it lets go (None: it keeps none).
_Cleared = tuple[Executable, Update, "Select[Any] | None"]
_Step = Callable[[Sequence[int]], _Cleared]


def _raw_size() -> ColumnElement[int]:
    """The raw mail's size, in the row or as a file."""
    in_file = InboundMessage.raw_sha256.is_not(None)
    return case((in_file, InboundMessage.size), else_=func.length(InboundMessage.raw))


def _raw_step(ids: Sequence[int]) -> _Cleared:
    size = _raw_size()
    where = (
        InboundMessage.ticket_id.in_(ids)
        & (InboundMessage.state != InboundState.QUARANTINED)
        & raw_held()
    )
    return (
        select(InboundMessage.ticket_id, func.count(), func.coalesce(func.sum(size), 0))
        .where(where)
        .group_by(InboundMessage.ticket_id),
        update(InboundMessage).where(where).values(raw=b"", raw_sha256=None),
        select(InboundMessage.raw_sha256).where(where),
    )


def _outbox_step(ids: Sequence[int]) -> _Cleared:
    size = func.length(Outbox.raw)
    # A mail that failed to render keeps its recipe (outbound/render.py): it goes too.
    held = (size > 0) | Outbox.recipe.is_not(None)
    where = Outbox.ticket_id.in_(ids) & (Outbox.state != OutboxState.PENDING) & held
    return (
        select(Outbox.ticket_id, func.count(), func.coalesce(func.sum(size), 0))
        .where(where)
        .group_by(Outbox.ticket_id),
        update(Outbox).where(where).values(raw=b"", recipe=None),
        None,
    )


def _attachments_step(ids: Sequence[int]) -> _Cleared:
    in_file = AttachmentRecord.storage == FILE_STORAGE
    size = case((in_file, AttachmentRecord.size), else_=func.length(AttachmentRecord.data))
    where = (
        AttachmentRecord.article_id.in_(select(Article.id).where(Article.ticket_id.in_(ids)))
        & attachment_held()
    )
    return (
        select(Article.ticket_id, func.count(), func.coalesce(func.sum(size), 0))
        .join(Article, Article.id == AttachmentRecord.article_id)
        .where(where)
        .group_by(Article.ticket_id),
        # The name, size and hash stay; a purged row names no file.
        update(AttachmentRecord).where(where).values(data=None, storage="purged"),
        select(AttachmentRecord.sha256).where(where, in_file),
    )


def _html_step(ids: Sequence[int]) -> _Cleared:
    where = Article.ticket_id.in_(ids) & Article.html_body.is_not(None)
    return (
        select(Article.ticket_id, func.count(), literal(0))
        .where(where)
        .group_by(Article.ticket_id),
        update(Article).where(where).values(html_body=None),
        None,
    )


def _text_step(ids: Sequence[int]) -> _Cleared:
    where = Article.ticket_id.in_(ids) & (Article.text_body != "")
    return (
        select(Article.ticket_id, func.count(), literal(0))
        .where(where)
        .group_by(Article.ticket_id),
        update(Article).where(where).values(text_body=""),
        None,
    )


_STEPS: dict[PurgeKind, _Step] = {
    "raw": _raw_step,
    "outbox": _outbox_step,
    "attachments": _attachments_step,
    "html": _html_step,
    "text": _text_step,
}


class _Tally:
    """Counts (and bytes) per kind, and what each ticket lost, for its audit event."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.tickets: dict[int, dict[str, int]] = {}

    def add(self, kind: str, rows: Sequence[Sequence[Any]]) -> None:
        for ticket_id, count, size in rows:
            self.tickets.setdefault(ticket_id, {})[kind] = count
            self.counts[kind] = self.counts.get(kind, 0) + count
            self.counts[f"{kind}_bytes"] = self.counts.get(f"{kind}_bytes", 0) + int(size)

    def report(self) -> PurgeReport:
        counts = {f.name: self.counts.get(f.name, 0) for f in fields(PurgeReport)[2:]}
        return PurgeReport(None, len(self.tickets), **counts)


def _purge_unattached(session: Session, cutoff: datetime, dry_run: bool) -> PurgeReport:
    where = (
        InboundMessage.ticket_id.is_(None)
        & (InboundMessage.state == InboundState.IGNORED)
        & (InboundMessage.received_at < cutoff)
        & raw_held()
    )
    count, size = session.execute(
        select(func.count(), func.coalesce(func.sum(_raw_size()), 0)).where(where)
    ).one()
    if count and not dry_run:
        forget(session, session.scalars(select(InboundMessage.raw_sha256).where(where)))
        session.execute(
            update(InboundMessage)
            .where(where)
            .values(raw=b"", raw_sha256=None)
            .execution_options(synchronize_session=False)
        )
    return PurgeReport(unattached=count, unattached_bytes=size)


def _day(value: datetime | None) -> str:
    return value.date().isoformat() if value else "-"


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000  # type: ignore[assignment]
    return f"{count} B"
