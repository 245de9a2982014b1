"""Retention's `erase_content_after`: tickets closed longer ago than that keep their record
and lose their content, through the erasure a customer's request uses (tickets/erasure.py),
except that who wrote stays: the record keeps its addresses and names.

Run by the daemon on the retention schedule and by `mailbridge purge`, in batches of
BATCH tickets, each its own transaction. A ticket is taken with `FOR UPDATE SKIP LOCKED`
on PostgreSQL, so instances purging at once share the work, and one a mail is reopening
is left for the next run. A ticket whose content was erased is taken again only if it was
closed again since (a customer wrote, and it was answered).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from mailbridge.app import App
from mailbridge.core.states import CLOSED_STATUSES
from mailbridge.db import scrub
from mailbridge.db.models import Ticket
from mailbridge.tickets.erasure import Scrub, Tally, erase_content
from mailbridge.tickets.retention import BATCH

__all__ = ["RETENTION", "ContentErased", "erase_closed_content"]

RETENTION = Scrub("retention")


@dataclass(frozen=True)
class ContentErased:
    """What erasing old content changed (or, in a dry run, would change): rows per table."""

    cutoff: datetime | None = None  # tickets closed before this
    tickets: int = 0
    rows: Mapping[str, int] = field(default_factory=dict)
    batches: int = 0

    @property
    def anything(self) -> bool:
        return self.tickets > 0

    def summary(self) -> str:
        day = self.cutoff.date().isoformat() if self.cutoff else "-"
        counted = ", ".join(f"{table} {n}" for table, n in sorted(self.rows.items()) if n)
        return f"the content of {self.tickets} ticket(s) closed before {day} ({counted})"


def erase_closed_content(
    app: App, *, dry_run: bool = False, now: datetime | None = None
) -> ContentErased:
    """Erase the content of tickets closed longer ago than `erase_content_after` (or, with
    dry_run, count what would change)."""
    after = app.config.retention.erase_content_after
    if after is None:
        return ContentErased()
    cutoff = (now or app.clock.now()) - after
    total: Tally = Counter()
    tickets = batches = last = 0
    while True:
        with app.transaction() as session:
            scrub.overwrite_deleted(session)
            ids = _due(session, cutoff, last, lock=not dry_run)
            if not ids:
                break
            total += erase_content(session, ids, RETENTION, app.clock.now(), dry_run=dry_run)
        tickets, batches, last = tickets + len(ids), batches + 1, ids[-1]
    if tickets and not dry_run:
        scrub.compact(app.engine)
    return ContentErased(cutoff, tickets, dict(total), batches)


def _due(session: Session, cutoff: datetime, after: int, *, lock: bool) -> Sequence[int]:
    """The next batch of closed tickets whose content is due, in id order."""
    closed_at = func.coalesce(Ticket.resolved_at, Ticket.updated_at)  # as retention.py reads it
    query = (
        select(Ticket.id)
        .where(
            Ticket.status.in_(CLOSED_STATUSES),
            closed_at < cutoff,
            or_(Ticket.content_erased_at.is_(None), Ticket.content_erased_at < closed_at),
            Ticket.id > after,
        )
        .order_by(Ticket.id)
        .limit(BATCH)
    )
    if lock:
        # NO KEY UPDATE: a sender recording its answer (an event on the ticket) is not held up.
        query = query.with_for_update(skip_locked=True, key_share=True)
    return session.scalars(query).all()
