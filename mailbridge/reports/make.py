"""Putting the report together: the figures of every group and of the whole period."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, case, select

from mailbridge.app import App
from mailbridge.core.report import (
    NOTHING,
    PERCENTILES,
    TIME_GROUPINGS,
    Group,
    Grouping,
    Period,
    Report,
    Waiting,
    add_up,
    buckets,
    figures_of,
)
from mailbridge.reports.figures import backlog, counted, group_key, report_tables
from mailbridge.reports.sql import TOTAL, Percentiles, facts, percentiles

__all__ = ["make_report"]


def _series() -> dict[str, tuple[ColumnElement[float], tuple[float, ...]]]:
    f = facts.c
    values: dict[str, ColumnElement[float]] = {
        "ack": f.ack,
        "first_response": f.first_response,
        "resolution": f.resolution,
        "unhappy_first_response": case((f.unhappy == 1, f.first_response)),
        "others_first_response": case((f.unhappy == 0, f.first_response)),
    }
    return {name: (values[name], fractions) for name, fractions in PERCENTILES.items()}


def _picks(found: Percentiles, group: object) -> dict[str, dict[float, float]]:
    return {name: found.get((name, group), {}) for name in PERCENTILES}


def make_report(app: App, period: Period, by: Grouping) -> Report:
    """The figures of `period`, per group of `by` and in total, as of now."""
    now = app.clock.now()
    times = buckets(period, by, app.config.calendar.zone)
    with report_tables(app, period, times, by, now) as connection:
        key, source = group_key(by)
        series = _series()
        sums = counted(connection, by)
        # A ticket with two tags is in two groups, and once in the total.
        total = {None: add_up(sums.values())} if by != "tag" else counted(connection, None)
        picks = percentiles(
            connection, series, select().select_from(source), key, total=by != "tag"
        )
        if by == "tag":
            picks.update(percentiles(connection, series, select().select_from(facts), None))
        waiting = backlog(connection, by, times)
        if by in TIME_GROUPINGS:  # the period ends with its last bucket
            total_waiting: Waiting = {None: waiting[len(times) - 1]}
        else:
            total_waiting = backlog(connection, None, times)
    if by in TIME_GROUPINGS:
        keys: list[Any] = list(range(len(times)))
    else:
        keys = sorted(set(sums) | set(waiting), key=lambda k: (k is None, str(k)))
    groups = []
    for k in keys:
        start, end = (times[k].start, times[k].end) if by in TIME_GROUPINGS else (None, None)
        figures = figures_of(
            sums.get(k, NOTHING), _picks(picks, k), waiting.get(k, (0, None)), end or period.end
        )
        name = times[k].key if by in TIME_GROUPINGS else k
        groups.append(Group(name, start, end, figures))
    everything = figures_of(
        total.get(None, NOTHING),
        _picks(picks, TOTAL),
        total_waiting.get(None, (0, None)),
        period.end,
    )
    return Report(period, by, now, tuple(groups), everything)
