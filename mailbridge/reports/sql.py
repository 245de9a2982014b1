"""What the report's SQL needs that the two databases spell differently: seconds since the
epoch of a stored time, business time from the business clock, the bucket a moment falls
in, the report's temporary tables, and percentiles (PostgreSQL's percentile_cont; SQLite's
durations sorted here).

The temporary tables live only in the report's own connection, closed after it.
"""

from __future__ import annotations

import typing
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Float,
    FromClause,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    null,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import Grouping
from sqlalchemy.sql.expression import FunctionElement

from mailbridge.core.report import OpenStretch, percentile
from mailbridge.db.models import UTCDateTime

__all__ = [
    "TOTAL",
    "BusinessAt",
    "Percentiles",
    "apart",
    "business_at",
    "epoch",
    "millis",
    "percentiles",
    "position_in",
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
    # date_part computes in floating point; EXTRACT goes through NUMERIC (PostgreSQL 14+),
    # several times slower, for the same double once cast.
    return f"date_part('epoch', {compiler.process(element.clauses, **kw)})"


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
    # Half a millisecond up, in floating point: ROUND through NUMERIC (a float printed to
    # decimal digits and read back) was a fifth of a 1M-ticket report. The two differ only
    # on an exact half millisecond, which the floats' own noise (about 0.2 µs) already
    # decides either way.
    return f"(floor(({compiler.process(element.clauses, **kw)}) * 1000.0 + 0.5) / 1000.0)"


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
# One row per ticket of the period: what the figures are counted from. Keyed by bucket
# first, so that SQLite reads it back in the order of the time groupings' groups.
facts = Table(
    "report_facts",
    _TEMPORARY,
    Column("position", Integer, primary_key=True),  # its bucket
    Column("ticket_id", Integer, primary_key=True),
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
    sqlite_with_rowid=False,
)


def temporary_tables(connection: Connection, stretches: Sequence[OpenStretch]) -> None:
    """Create the facts table, and the business clock (`clock_table`)."""
    facts.create(connection)
    clock_table(connection, stretches)


def clock_table(connection: Connection, stretches: Sequence[OpenStretch]) -> None:
    """On SQLite, the clock table filled (`business_at`); PostgreSQL reads the clock from
    arrays and needs no table."""
    if connection.dialect.name == "postgresql":
        # The report's statements run once each and take about a second: compiling them
        # (JIT, on by default) cost PostgreSQL more than half a second of a 1M-ticket report.
        if (connection.dialect.server_version_info or (0,)) >= (11,):  # JIT came in 11
            connection.exec_driver_sql("SET jit = off")
        return
    clock.create(connection)
    if stretches:
        connection.execute(
            insert(clock),
            [{"opens": s.opens, "closes": s.closes, "passed": s.before} for s in stretches],
        )


def position_in(moment: ColumnElement[Any], ends: Sequence[datetime]) -> ColumnElement[int]:
    """How many of the sorted `ends` are at or before `moment`: the position of the bucket
    it falls in, 0 before the first, len(ends) from the last end on; NULL for NULL.

    A binary search written out as nested CASEs (depth log2 of the buckets), so each row
    costs a few comparisons and no join: a range join with a bucket table had PostgreSQL
    expect thirteen times the rows it got, and SQLite read the bucket table per row."""
    if not ends:
        return literal(0)

    def search(low: int, high: int) -> ColumnElement[int]:
        if low == high:
            return literal(low)
        middle = (low + high) // 2
        return case(
            (moment < literal(ends[middle], UTCDateTime()), search(low, middle)),
            else_=search(middle + 1, high),
        )

    return case((moment.is_(None), null()), else_=search(0, len(ends)))


# Business seconds since the clock's origin at a moment (seconds since the epoch).
BusinessAt = Callable[[ColumnElement[float]], ColumnElement[float]]


def business_at(connection: Connection, stretches: Sequence[OpenStretch]) -> BusinessAt:
    """Business time at a moment, from the opening interval it is in or after: on
    PostgreSQL, width_bucket's binary search over the intervals as arrays, within the row;
    on SQLite, an index look-up in the clock table. (PostgreSQL spent 2 µs on each such
    look-up, four per business-hours ticket: a quarter of a 1M-ticket report.)"""
    if connection.dialect.name != "postgresql":
        return _business_at
    opens, closes, passed = (
        # parenthesised: PostgreSQL subscripts a cast only so
        Grouping(cast(bindparam(name, values, type_=ARRAY(Float)), ARRAY(Float)))
        for name, values in (
            ("clock_opens", [s.opens for s in stretches]),
            ("clock_closes", [s.closes for s in stretches]),
            ("clock_passed", [s.before for s in stretches]),
        )
    )

    def at(moment: ColumnElement[float]) -> ColumnElement[float]:
        # The interval numbered n (from 1) opens at or before the moment; 0: none does.
        n = func.width_bucket(moment, opens)
        return func.coalesce(passed[n] + func.least(moment, closes[n]) - opens[n], 0.0)

    return at


def _business_at(moment: ColumnElement[float]) -> ColumnElement[float]:
    within = case((moment < clock.c.closes, moment), else_=clock.c.closes)
    found = (
        select(clock.c.passed + within - clock.c.opens)
        .where(clock.c.opens <= moment)
        .order_by(clock.c.opens.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(found, literal(0.0))


def elapsed(
    at: BusinessAt,
    start: ColumnElement[Any],
    end: ColumnElement[Any],
    business: ColumnElement[bool],
) -> ColumnElement[float]:
    """Seconds from `start` to `end` on the ticket's clock: business time (`at`) where
    `business` holds, else calendar time; NULL when `end` is NULL."""
    begin, finish = epoch(start), epoch(end)
    return case(
        (end.is_(None), null()),
        (business, millis(at(finish) - at(begin))),
        else_=millis(finish - begin),
    )


def apart(query: Select[Any]) -> FromClause:
    """`query` as a subquery that neither database merges into the query reading it
    (an OFFSET, even of 0, keeps PostgreSQL and SQLite from flattening it): each of its
    columns is then worked out once per row, however often it is read. Merged, every
    reference repeated the expression (ten date_part calls and a dozen binary searches
    per business-hours ticket)."""
    return query.offset(0).subquery()


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

    PostgreSQL computes them (percentile_cont), the groups and the total in one pass
    (GROUPING SETS). SQLite has no percentile function, and its sort is slow next to
    Python's (a window over the sorted values took 0.4 s per 100,000 tickets): it sends
    the values ordered by group, and each group's are sorted here."""
    if connection.dialect.name == "postgresql":
        return _percentile_cont(connection, series, source, key, total=total)
    return _sorted_here(connection, series, source, key, total=total)


def _percentile_cont(
    connection: Connection,
    series: Series,
    source: Select[Any],
    key: ColumnElement[Any] | None,
    *,
    total: bool,
) -> Percentiles:
    columns = [
        func.percentile_cont(fraction).within_group(value)
        for value, fractions in series.values()
        for fraction in fractions
    ]
    # The second column tells the total's row: a group's own key may be NULL (no
    # assignee, no tag).
    if key is None:
        query = source.with_only_columns(null(), literal(1), *columns)
    elif total:
        query = source.with_only_columns(key, func.grouping(key), *columns)
        query = query.group_by(func.grouping_sets(key, tuple_()))
    else:
        query = source.with_only_columns(key, literal(0), *columns).group_by(key)
    found: Percentiles = defaultdict(dict)
    for row in connection.execute(query):
        group = TOTAL if row[1] else row[0]
        values = iter(row[2:])
        for name, (_, fractions) in series.items():
            for fraction in fractions:
                value = next(values)
                if value is not None:
                    found[name, group][fraction] = float(value)
    return found


def _sorted_here(
    connection: Connection,
    series: Series,
    source: Select[Any],
    key: ColumnElement[Any] | None,
    *,
    total: bool,
) -> Percentiles:
    # How many values of each series each group has, in the order of `key` (NULL first):
    # each series' values, read in that same order, are then cut into the groups.
    sizes = source.with_only_columns(_key(key), *(func.count(v) for v, _ in series.values()))
    if key is not None:
        sizes = sizes.group_by(key).order_by(key)
    groups = connection.execute(sizes).all()
    found: Percentiles = defaultdict(dict)
    for column, (name, (value, fractions)) in enumerate(series.items(), start=1):
        query = source.with_only_columns(value).where(value.is_not(None))
        values = _plain_values(connection, query if key is None else query.order_by(key))
        merged: list[float] = []
        start = 0
        for group in groups:
            ordered = sorted(values[start : start + group[column]])
            start += group[column]
            _pick(found, name, TOTAL if key is None else group[0], ordered, fractions)
            merged += ordered
        if total and key is not None:
            merged.sort()  # sorted runs, one per group: merged, not sorted from scratch
            _pick(found, name, TOTAL, merged, fractions)
    return found


def _plain_values(connection: Connection, query: Select[Any]) -> list[float]:
    """The one column of `query`'s rows, read from the driver's own cursor: six times
    faster than through SQLAlchemy's rows, for a hundred thousand values per series.
    The query's few constants are written into its text."""
    text = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    cursor = connection.connection.cursor()
    try:
        cursor.execute(text)
        # sqlite3's cursor yields its rows; the DB-API's type does not say so
        return [value for (value,) in typing.cast(Iterable[tuple[float]], cursor)]
    finally:
        cursor.close()


def _pick(
    found: Percentiles, name: str, group: object, ordered: list[float], fractions: Sequence[float]
) -> None:
    for fraction in fractions:
        value = percentile(ordered, fraction)
        if value is not None:
            found[name, group][fraction] = value


def _key(key: ColumnElement[Any] | None) -> ColumnElement[Any]:
    return (null() if key is None else key).label("key")


def when(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """1 where `condition` holds, else 0: a count by SUM on both databases."""
    return case((condition, 1), else_=0)
