"""The blocklist and the allowlist: the configuration's `[spam] block` and `allow`, those of
its `[spam] include` files, and the `sender_rule` table that `mailbridge spam block|allow|
unblock` and a staff `#spam block` maintain. core/spam.py decides with them (the allowlist
beats the blocklist, which beats the filter's verdict; docs/architecture.md, "Spam").

Each change to the table is an audit event about no ticket. Runs inside the caller's
transaction and commits nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbridge.config import Config
from mailbridge.core.spam import normalize_pattern
from mailbridge.db import queries
from mailbridge.db.models import SenderRule

__all__ = [
    "Listed",
    "allow_sender",
    "block_sender",
    "listed_senders",
    "sender_lists",
    "unblock_sender",
]

Kind = Literal["block", "allow"]
Source = Literal["config", "include", "table"]


def sender_lists(session: Session, config: Config) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(allow, block): every pattern of the configuration, its included files and the
    table, each once, in that order."""
    listed = listed_senders(session, config)
    allow = dict.fromkeys(entry.pattern for entry in listed if entry.kind == "allow")
    block = dict.fromkeys(entry.pattern for entry in listed if entry.kind == "block")
    return tuple(allow), tuple(block)


@dataclass(frozen=True, slots=True)
class Listed:
    """One pattern of the lists and where it comes from (`mailbridge spam list`)."""

    pattern: str
    kind: Kind
    source: Source
    file: str | None = None  # the configuration or included file; None for the table
    created_at: datetime | None = None  # the table's own record of who added it, and why
    created_by: str | None = None
    note: str | None = None


def listed_senders(session: Session, config: Config) -> list[Listed]:
    """Every pattern: the configuration's, each included file's, then the table's."""
    found = _configured(config)
    rows = session.scalars(select(SenderRule).order_by(SenderRule.kind, SenderRule.pattern))
    found += [
        Listed(r.pattern, _kind(r.kind), "table", None, r.created_at, r.created_by, r.note)
        for r in rows
    ]
    return found


def _configured(config: Config) -> list[Listed]:
    found: list[Listed] = []
    sources = [("config", str(config.source), config.spam.allow, config.spam.block)]
    sources += [
        ("include", str(path), lists.allow, lists.block) for path, lists in config.included_senders
    ]
    for source, file, allow, block in sources:
        found += [Listed(p, "allow", _source(source), file) for p in allow]
        found += [Listed(p, "block", _source(source), file) for p in block]
    return found


def _kind(value: str) -> Kind:
    return "allow" if value == "allow" else "block"


def _source(value: str) -> Source:
    return "include" if value == "include" else "config"


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """What one block, allow or unblock did to the table."""

    pattern: str
    kind: Kind | None  # the row's kind now; None: no row
    previous: Kind | None  # its kind before; None: there was none


def block_sender(
    session: Session, pattern: str, by: str, note: str | None, now: datetime
) -> Change:
    """Block the pattern (an allow row of it becomes a block)."""
    return _set(session, pattern, "block", by, note, now)


def allow_sender(
    session: Session, pattern: str, by: str, note: str | None, now: datetime
) -> Change:
    """Allow the pattern (a block row of it becomes an allow)."""
    return _set(session, pattern, "allow", by, note, now)


def unblock_sender(
    session: Session, pattern: str, by: str, note: str | None, now: datetime
) -> Change:
    """Remove the pattern's row, block or allow; a pattern with no row changes nothing."""
    pattern = normalize_pattern(pattern)
    row = session.get(SenderRule, pattern)
    if row is None:
        return Change(pattern, None, None)
    previous = _kind(row.kind)
    session.delete(row)
    session.flush()
    _event(session, now, "sender_unlisted", pattern, by, note, kind=previous)
    return Change(pattern, None, previous)


def _set(
    session: Session, pattern: str, kind: Kind, by: str, note: str | None, now: datetime
) -> Change:
    pattern = normalize_pattern(pattern)
    row = session.get(SenderRule, pattern)
    previous = None if row is None else _kind(row.kind)
    if row is None:
        session.add(
            SenderRule(pattern=pattern, kind=kind, created_at=now, created_by=by, note=note)
        )
    elif previous != kind or note:
        row.kind, row.created_at, row.created_by = kind, now, by
        row.note = note or row.note
    session.flush()
    event = "sender_blocked" if kind == "block" else "sender_allowed"
    _event(session, now, event, pattern, by, note, previous=previous)
    return Change(pattern, kind, previous)


def _event(
    session: Session,
    now: datetime,
    event_type: str,
    pattern: str,
    by: str,
    note: str | None,
    **data: object,
) -> None:
    """The audit event of a change to the lists (events.add_general_event without a step)."""
    queries.insert_event(
        session, None, now, event_type, {"pattern": pattern, "by": by, "note": note, **data}
    )
