"""What the report's SQL needs that the two databases spell differently: seconds since the
epoch of a stored time, business time from the business clock, the report's temporary
tables, and percentiles (PostgreSQL's percentile_cont; on SQLite, the rows at the two
ranks around each percentile, found by a window over the sorted values).

The temporary tables live only in the report's own connection and transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Float,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    case,
    cast,
    func,
    insert,
    literal,
    null,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from mailbridge.core.report import Bucket, OpenStretch, ranks_around
from mailbridge.db.models import UTCDateTime

__all__ = [
    "Percentiles",
    "business_elapsed",
    "epoch",
    "percentiles",
    "temporary_tables",
]


class epoch(FunctionElement[float]):  # noqa: N801 - an SQL function, named as one
    """Seconds since 1970 of a stored UTC time, as a float."""

    type = Float()
    inherit_cache = True
    name = "epoch"


@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: Any, **kw: Any) -> str:
    # SQLite stores naive UTC text; julianday reads it to the millisecond.
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


@compiles(epoch, "postgresql")
def _epoch_postgresql(element: epoch, compiler: Any, **kw: Any) -> str:
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS FLOAT8)"


# --- the temporary tables ------------------------------------------------------------------

_TEMPORARY = MetaData()

clock = Table(
    "report_clock",
    _TEMPORARY,
    Column("opens", Float, primary_key=True),
    Column("closes", Float, nullable=False),
    Column("passed", Float, nullable=False),  # business seconds before `opens`
    prefixes=["TEMPORARY"],
)
bucket = Table(
    "report_bucket",
    _TEMPORARY,
    Column("position", Integer, primary_key=True),
    Column("starts", UTCDateTime, nullable=False),
    Column("ends", UTCDateTime, nullable=False),
    prefixes=["TEMPORARY"],
)
# One row per ticket of the period: what the figures are counted from.
facts = Table(
    "report_facts",
    _TEMPORARY,
    Column("ticket_id", Integer, primary_key=True),
    Column("position", Integer, nullable=False),  # its bucket
    Column("grp", String),  # its group for the groupings by a ticket column
    Column("ack", Float),  # seconds to the acknowledgement leaving; NULL: none left
    Column("first_response", Float),  # seconds, on the policy's clock
    Column("first_met", Integer, nullable=False),
    Column("first_decided", Integer, nullable=False),
    Column("resolution", Float),
    Column("resolution_met", Integer, nullable=False),
    Column("resolution_decided", Integer, nullable=False),
    Column("reopened", Integer, nullable=False),
    Column("escalations", Integer, nullable=False),
    Column("unhappy", Integer, nullable=False),
    Column("rating", Integer),  # 1 good, 0 bad, NULL unrated: the latest rating
    Column("faq_solved", Integer, nullable=False),
    prefixes=["TEMPORARY"],
)


def temporary_tables(
    connection: Connection, stretches: Sequence[OpenStretch], buckets: Sequence[Bucket]
) -> None:
    """Create and fill the clock and bucket tables, and create the facts table."""
    for table in (clock, bucket, facts):
        table.create(connection)
    if stretches:
        connection.execute(
            insert(clock), [{"opens": s.opens, "closes": s.closes, "passed": s.before} for s in stretches]
        )
    connection.execute(
        insert(bucket),
        [{"position": n, "starts": b.start, "ends": b.end} for n, b in enumerate(buckets)],
    )


def drop_temporary_tables(connection: Connection) -> None:
    for table in (facts, bucket, clock):
        table.drop(connection, checkfirst=True)


def _business_at(moment: ColumnElement[float]) -> ColumnElement[float]:
    """Business seconds since the clock's origin at `moment` (seconds since the epoch)."""
    within = case((moment < clock.c.closes, moment), else_=clock.c.closes)
    found = (
        select(clock.c.passed + within - clock.c.opens)
        .where(clock.c.opens <= moment)
        .order_by(clock.c.opens.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(found, literal(0.0))


def business_elapsed(
    start: ColumnElement[Any], end: ColumnElement[Any], business: ColumnElement[bool]
) -> ColumnElement[float]:
    """Seconds from `start` to `end` on the ticket's clock: business time where `business`
    holds, else calendar time; NULL when `end` is NULL."""
    begin, finish = epoch(start), epoch(end)
    return case(
        (end.is_(None), None),
        (business, _business_at(finish) - _business_at(begin)),
        else_=finish - begin,
    )


# --- percentiles --------------------------------------------------------------------------

# (series, group) -> {fraction: value}; the group is what `key` selected.
Percentiles = dict[tuple[str, object], dict[float, float]]


def percentiles(
    connection: Connection,
    series: dict[str, tuple[ColumnElement[float], Sequence[float]]],
    source: Select[Any],
    key: ColumnElement[Any] | None,
) -> Percentiles:
    """Continuous percentiles of each named series of values, per `key` (None: over all
    rows, under the group None), over the rows of `source` (a SELECT whose FROM clause the
    value and key columns come from)."""
    if connection.dialect.name == "postgresql":
        return _percentile_cont(connection, series, source, key)
    found: Percentiles = defaultdict(dict)
    for name, (value, fractions) in series.items():
        for group, picks in _ranked(connection, source, key, value, fractions).items():
            count = picks.pop(-1)
            for fraction in fractions:
                found[name, group][fraction] = _between(picks, count, fraction)
    return found


def _percentile_cont(
    connection: Connection,
    series: dict[str, tuple[ColumnElement[float], Sequence[float]]],
    source: Select[Any],
    key: ColumnElement[Any] | None,
) -> Percentiles:
    columns = [
        func.percentile_cont(fraction).within_group(value).label(f"p{n}_{m}")
        for n, (value, fractions) in enumerate(series.values())
        for m, fraction in enumerate(fractions)
    ]
    found: Percentiles = defaultdict(dict)
    query = source.with_only_columns(_key(key), *columns)
    if key is not None:
        query = query.group_by(key)
    for row in connection.execute(query):
        for n, (name, (_, fractions)) in enumerate(series.items()):
            for m, fraction in enumerate(fractions):
                value = row._mapping[f"p{n}_{m}"]
                if value is not None:
                    found[name, row.key][fraction] = float(value)
    return found


def _ranked(
    connection: Connection,
    source: Select[Any],
    key: ColumnElement[Any] | None,
    value: ColumnElement[float],
    fractions: Sequence[float],
) -> dict[object, dict[int, float]]:
    """Per group, the values at the ranks each fraction falls between (rank -1: the
    count). One sort of the group's values, and only those few rows come back."""
    ranked = (
        source.with_only_columns(
            _key(key),
            value.label("value"),
            (func.row_number().over(partition_by=key, order_by=value) - 1).label("rank"),
            func.count().over(partition_by=key).label("n"),
        )
        .where(value.is_not(None))
        .subquery()
    )
    wanted = []
    for fraction in fractions:
        low = cast((ranked.c.n - 1) * fraction, Integer)
        wanted += [ranked.c.rank == low, ranked.c.rank == low + 1]
    found: dict[object, dict[int, float]] = defaultdict(dict)
    query = select(ranked.c.key, ranked.c.rank, ranked.c.n, ranked.c.value).where(or_(*wanted))
    for row in connection.execute(query):
        found[row.key][row.rank] = float(row.value)
        found[row.key][-1] = row.n
    return found


def _key(key: ColumnElement[Any] | None) -> ColumnElement[Any]:
    return (null() if key is None else key).label("key")


def _between(picks: dict[int, float], count: float, fraction: float) -> float:
    """percentile_cont from the values at the two ranks around the fraction."""
    low, high, weight = ranks_around(int(count), fraction)
    return picks[low] + (picks[high] - picks[low]) * weight


def when(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """1 where `condition` holds, else 0: a count by SUM on both databases."""
    return case((condition, 1), else_=0)
