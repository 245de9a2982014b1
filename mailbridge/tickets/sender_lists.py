"""The blocklist and the allowlist: the configuration's `[spam] block` and `allow`, those of
its `[spam] include` files, and the `sender_rule` table that `mailbridge spam block|allow|
unblock` and a staff `#spam block` maintain. core/spam.py decides with them (the allowlist
beats the blocklist, which beats the filter's verdict; docs/architecture.md, "Spam").

For one sender (`address`), the table is asked only for the patterns that could name it,
by one look-up on its primary key: the address itself, its domain and each parent domain,
and the globs `*@DOMAIN`, `*@*.PARENT`, `*.PARENT` and `LOCAL@*`. The table holds only
patterns of those shapes (`table_pattern`); any other glob belongs in the configuration's
lists, which are matched whole. Nothing is cached: a row added by a staff `#spam block`
counts from the next mail on.

Each change to the table is an audit event about no ticket. Runs inside the caller's
transaction and commits nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import bindparam, select
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
    "table_candidates",
    "table_pattern",
    "unblock_sender",
]

Kind = Literal["block", "allow"]
Source = Literal["config", "include", "table"]

# The longest parent domain looked up, in labels: a sender who makes up a hundred labels
# ("a.a.….spam.example") still meets "spam.example", not a hundred look-ups.
MAX_LABELS = 8
_GLOB = frozenset("*?[")


def sender_lists(
    session: Session, config: Config, address: str | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(allow, block): the configuration's patterns, its included files', then the
    table's. With an address, only the table's rows that could name it (one indexed query;
    none for "")."""
    allow: list[str] = []
    block: list[str] = []
    for entry in _configured(config):
        (allow if entry.kind == "allow" else block).append(entry.pattern)
    rows: Iterable[tuple[str, str]]
    if address is None:
        rows = [(p, k) for p, k in session.execute(_ROWS)]
    else:
        candidates = table_candidates(address)
        if not candidates:
            return tuple(allow), tuple(block)
        known = _known_rows(session, candidates)
        rows = _rows_naming(session, candidates) if known is None else known
    for pattern, kind in rows:
        (allow if kind == "allow" else block).append(pattern)
    return tuple(dict.fromkeys(allow)), tuple(dict.fromkeys(block))


# Built once: composing the statement anew cost more than running it (about 0.3 ms a mail).
_ROWS = select(SenderRule.pattern, SenderRule.kind).order_by(SenderRule.pattern)
_ROWS_NAMING = _ROWS.where(SenderRule.pattern.in_(bindparam("candidates", expanding=True)))


_KNOWN = "mailbridge.sender_rules_known"  # session.info: (candidates, their rows)


@contextmanager
def rules_known(session: Session, addresses: Iterable[str]) -> Iterator[None]:
    """Read the table's rows that could name any of a batch's senders in one query: inside,
    `sender_lists` for one of them asks nothing. A block, allow or unblock forgets them."""
    candidates = {c for address in set(addresses) for c in table_candidates(address)}
    if not candidates or _KNOWN in session.info:
        yield
        return
    rows = _rows_naming(session, sorted(candidates))
    session.info[_KNOWN] = (frozenset(candidates), rows)
    try:
        yield
    finally:
        session.info.pop(_KNOWN, None)


def _rows_naming(session: Session, candidates: Sequence[str]) -> list[tuple[str, str]]:
    return [(p, k) for p, k in queries.read(session, _ROWS_NAMING, {"candidates": candidates})]


def _known_rows(session: Session, candidates: Sequence[str]) -> list[tuple[str, str]] | None:
    known: tuple[frozenset[str], Sequence[tuple[str, str]]] | None = session.info.get(_KNOWN)
    if known is None or not known[0].issuperset(candidates):
        return None
    wanted = set(candidates)
    return [row for row in known[1] if row[0] in wanted]


def table_candidates(address: str) -> tuple[str, ...]:
    """The stored patterns that could name `address` (see the module's docstring)."""
    local, at, domain = address.lower().rpartition("@")
    if not at or not local or not domain:
        return ()
    labels = domain.split(".")
    parents = [".".join(labels[-n:]) for n in range(min(len(labels) - 1, MAX_LABELS), 0, -1)]
    domains = [domain, *parents]
    return (
        f"{local}@{domain}",
        f"{local}@*",
        *domains,
        *(f"*@{d}" for d in domains),
        *(f"*@*.{p}" for p in parents),
        *(f"*.{p}" for p in parents),
    )


def table_pattern(text: str) -> str:
    """A pattern as the table stores it: normalized, and of a shape `table_candidates`
    looks up; ValueError says what was expected."""
    pattern = normalize_pattern(text)
    plain = pattern.removeprefix("*@*.").removeprefix("*@").removeprefix("*.")
    if pattern.endswith("@*") and "@" not in pattern[:-2]:
        plain = pattern[:-2]
    if _GLOB & set(plain):
        raise ValueError(
            "expected an address, a domain, *@DOMAIN, *@*.DOMAIN, *.DOMAIN or NAME@* (other "
            f"patterns belong in [spam] block or allow), not {text!r}"
        )
    return pattern


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
    pattern = normalize_pattern(pattern)  # a row of any shape may go
    row = session.get(SenderRule, pattern)
    if row is None:
        return Change(pattern, None, None)
    previous = _kind(row.kind)
    session.info.pop(_KNOWN, None)
    session.delete(row)
    session.flush()
    _event(session, now, "sender_unlisted", pattern, by, note, kind=previous)
    return Change(pattern, None, previous)


def _set(
    session: Session, pattern: str, kind: Kind, by: str, note: str | None, now: datetime
) -> Change:
    pattern = table_pattern(pattern)
    session.info.pop(_KNOWN, None)
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
