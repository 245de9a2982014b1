"""The `tally` table: counters written as things happen, read by /metrics.

A count is one INSERT in the caller's transaction, so a rolled-back step (or savepoint)
counts nothing and two instances never wait on one row. `fold` replaces the rows of each
counter with their sum now and then, so reading stays a scan of a few hundred rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import cast

from sqlalchemy import Table, delete, func, insert, select, tuple_
from sqlalchemy.orm import Session

from mailbridge.core.tallies import Labels
from mailbridge.db.models import Tally

__all__ = ["Totals", "add", "fold", "gathered", "totals"]

# (counter, labels) -> total
Totals = dict[tuple[str, Labels], float]
_INSERT = insert(cast(Table, Tally.__table__))
_GATHERED = "mailbridge.tally_gathered"  # session.info: counts waiting for `gathered` to end


def _key(labels: Labels) -> str:
    return json.dumps([list(pair) for pair in labels], separators=(",", ":"))


def _labels(key: str) -> Labels:
    return tuple((str(name), str(value)) for name, value in json.loads(key))


def add(session: Session, counts: Iterable[tuple[str, Labels, float]]) -> None:
    """Count, in the session's transaction: (counter, labels, amount) rows. One Core
    statement, as for the other rows processing writes per message (db/queries.py), or
    none yet inside `gathered`."""
    rows = [{"name": name, "labels": _key(key), "value": value} for name, key, value in counts]
    gathering: list[dict[str, object]] | None = session.info.get(_GATHERED)
    if gathering is not None:
        gathering.extend(rows)
    elif rows:
        session.connection().execute(_INSERT, rows)


@contextmanager
def gathered(session: Session) -> Iterator[None]:
    """The counts made inside are written together when it ends, one statement in place
    of one per count (a message's processing makes two or three), one row per counter and
    label set; if it raises, none are, as the savepoint around it rolls back what it
    wrote."""
    outer = session.info.get(_GATHERED)
    rows: list[dict[str, object]] = []
    session.info[_GATHERED] = rows
    try:
        yield
    finally:
        session.info[_GATHERED] = outer
    if outer is not None:
        outer.extend(rows)
    elif rows:
        session.connection().execute(_INSERT, _summed(rows))


def _summed(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """One row per counter and label set, holding their sum: what `fold` makes of them
    later, written at once (a sweep's thousand escalations: one row per level)."""
    sums: dict[tuple[object, object], float] = {}
    for row in rows:
        key = (row["name"], row["labels"])
        sums[key] = sums.get(key, 0.0) + cast(float, row["value"])
    return [{"name": name, "labels": key, "value": value} for (name, key), value in sums.items()]


def totals(session: Session) -> Totals:
    """Every counter's total per label set."""
    query = select(Tally.name, Tally.labels, func.sum(Tally.value)).group_by(
        Tally.name, Tally.labels
    )
    return {(name, _labels(key)): float(total) for name, key, total in session.execute(query)}


def fold(session: Session) -> int:
    """Fold each counter and label set with more than one row into one; the rows removed.

    The rows are deleted and their sum taken from what the DELETE returns, so a count an
    instance commits meanwhile is either folded or left as it is, never lost; two folds
    at once each take what they deleted."""
    several = (
        select(Tally.name, Tally.labels).group_by(Tally.name, Tally.labels).having(func.count() > 1)
    )
    if session.execute(several.limit(1)).first() is None:
        return 0
    gone = session.execute(
        delete(Tally)
        .where(tuple_(Tally.name, Tally.labels).in_(several))
        .returning(Tally.name, Tally.labels, Tally.value)
        .execution_options(synchronize_session=False)
    ).all()
    summed = _summed([{"name": name, "labels": key, "value": value} for name, key, value in gone])
    if summed:
        session.execute(insert(Tally), summed)
    return len(gone) - len(summed)
