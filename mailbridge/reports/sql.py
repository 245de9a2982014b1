"""What the report's SQL needs that the two databases spell differently: seconds since the
epoch of a stored time, business time from the business clock, the report's temporary
tables, and percentiles (PostgreSQL's percentile_cont; on SQLite, the rows at the two
ranks around each percentile, found by a window over the sorted values).

The temporary tables live only in the report's own connection, closed after it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Final

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
    func,
    insert,
    literal,
    null,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from mailbridge.core.report import Bucket, OpenStretch, percentile
from mailbridge.db.models import UTCDateTime

__all__ = [
    "TOTAL",
    "Percentiles",
    "analyze",
    "business_elapsed",
    "duration",
    "epoch",
    "percentiles",
    "temporary_tables",
]


class epoch(FunctionElement[float]):
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


class millis(FunctionElement[float]):
    """A duration in seconds rounded to the millisecond: SQLite reads times to the
    millisecond, through floats a few microseconds off, and the figures must not depend on
    that noise."""

    type = Float()
    inherit_cache = True
    name = "millis"


@compiles(millis, "sqlite")
def _millis_sqlite(element: millis, compiler: Any, **kw: Any) -> str:
    return f"ROUND({compiler.process(element.clauses, **kw)}, 3)"


@compiles(millis, "postgresql")
def _millis_postgresql(element: millis, compiler: Any, **kw: Any) -> str:
    return f"CAST(ROUND(CAST({compiler.process(element.clauses, **kw)} AS NUMERIC), 3) AS FLOAT8)"


def duration(start: ColumnElement[Any], end: ColumnElement[Any]) -> ColumnElement[float]:
    """Seconds from `start` to `end` on the wall clock; NULL when either is."""
    return millis(epoch(end) - epoch(start))


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
            insert(clock),
            [{"opens": s.opens, "closes": s.closes, "passed": s.before} for s in stretches],
        )
    connection.execute(
        insert(bucket),
        [{"position": n, "starts": b.start, "ends": b.end} for n, b in enumerate(buckets)],
    )
    analyze(connection, clock, bucket)


def analyze(connection: Connection, *tables: Table) -> None:
    """PostgreSQL plans a temporary table it has no statistics of as a thousand rows or
    more: told the real counts, it stops spilling a 13-bucket join to disk (1.1 s of a
    report of 6,000 tickets, without it)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("ANALYZE " + ", ".join(t.name for t in tables))


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
        (business, millis(_business_at(finish) - _business_at(begin))),
        else_=duration(start, end),
    )


# --- percentiles --------------------------------------------------------------------------

# (series, group) -> {fraction: value}; the group is what `key` selected (None for rows
# without one: no assignee, no tag), TOTAL for all rows.
Percentiles = dict[tuple[str, object], dict[float, float]]
TOTAL: Final = object()
Series = Mapping[str, tuple[ColumnElement[float], Sequence[float]]]


def percentiles(
    connection: Connection,
    series: Series,
    source: Select[Any],
    key: ColumnElement[Any] | None,
    *,
    total: bool = False,
) -> Percentiles:
    """Continuous percentiles of each named series of values per `key` (None: over all
    rows, under the group TOTAL), over the rows of `source` (a SELECT whose FROM clause the
    value and key columns come from); with `total`, also over all rows, which is right only
    when each row is in one group.

    PostgreSQL computes them (percentile_cont). SQLite has no percentile function, and
    its sort is slow next to Python's (a window over the sorted values took 0.4 s per
    100,000 tickets): it sends the values, unsorted, and they are sorted here."""
    if connection.dialect.name == "postgresql":
        found = _percentile_cont(connection, series, source, key)
        if total and key is not None:
            found.update(_percentile_cont(connection, series, source, None))
        return found
    return _sorted_here(connection, series, source, key, total=total)


def _percentile_cont(
    connection: Connection, series: Series, source: Select[Any], key: ColumnElement[Any] | None
) -> Percentiles:
    columns = [
        func.percentile_cont(fraction).within_group(value)
        for value, fractions in series.values()
        for fraction in fractions
    ]
    query = source.with_only_columns(_key(key), *columns)
    if key is not None:
        query = query.group_by(key)
    found: Percentiles = defaultdict(dict)
    for row in connection.execute(query):
        values = iter(row[1:])
        for name, (_, fractions) in series.items():
            for fraction in fractions:
                value = next(values)
                if value is not None:
                    found[name, row[0] if key is not None else TOTAL][fraction] = float(value)
    return found


def _sorted_here(
    connection: Connection,
    series: Series,
    source: Select[Any],
    key: ColumnElement[Any] | None,
    *,
    total: bool,
) -> Percentiles:
    query = source.with_only_columns(_key(key), *(value for value, _ in series.values()))
    columns = list(zip(*connection.execute(query).all(), strict=True)) or [()] * (len(series) + 1)
    groups = columns[0] if key is not None else [TOTAL] * len(columns[0])
    found: Percentiles = defaultdict(dict)
    for (name, (_, fractions)), values in zip(series.items(), columns[1:], strict=True):
        by_group: dict[object, list[float]] = defaultdict(list)
        for group, value in zip(groups, values, strict=True):
            if value is not None:
                by_group[group].append(value)
        if total and key is not None:
            by_group[TOTAL] = [v for v in values if v is not None]
        for group, found_values in by_group.items():
            found_values.sort()
            for fraction in fractions:
                value = percentile(found_values, fraction)
                if value is not None:
                    found[name, group][fraction] = value
    return found


def _key(key: ColumnElement[Any] | None) -> ColumnElement[Any]:
    return (null() if key is None else key).label("key")


def when(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """1 where `condition` holds, else 0: a count by SUM on both databases."""
    return case((condition, 1), else_=0)
