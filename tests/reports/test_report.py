"""`make_report` on SQLite and PostgreSQL: tickets with known timestamps give exactly the
known figures, in every grouping. Business-hours tickets cross a weekend and an Italian
holiday (8 December); spam and merged tickets count nowhere; a reopened ticket, an
escalation, ratings and an FAQ answer that solved the matter are counted once each.

Each ticket carries the facts worked out by hand (seconds on its policy's clock, whether
its deadlines were met); the figures of any group follow from them by the plain arithmetic
of `expected`, which uses the standard library's quantiles, not the code under test."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from mailbridge.core.report import GROUPINGS, Figures, Grouping
from mailbridge.core.states import TicketStatus
from tests.support.report_world import (
    ROME,
    THREE_WEEKS,
    Made,
    ReportWorld,
    make_report_world,
    rome,
)

pytestmark = pytest.mark.db

NOW = rome(20, 12, month=12)
S = timedelta(seconds=1)


@dataclass(frozen=True)
class Known:
    """A ticket and its facts, worked out by hand."""

    made: Made
    ack: int | None = None  # seconds until the acknowledgement left
    first: int | None = None  # first response, seconds on the policy's clock
    first_met: bool | None = None  # None: neither met nor missed yet
    resolution: int | None = None
    resolution_met: bool | None = None
    reopened: bool = False
    escalations: int = 0
    rating: bool | None = None  # the latest: True "solved"
    faq: bool = False
    counted: bool = True  # in the period, and neither spam nor merged


def office(**keys: object) -> Made:
    """A billing ticket on the office's business hours, in Italian unless told."""
    return Made(**{"policy": "office", "queue": "billing", "language": "it", **keys})  # type: ignore[arg-type]


def _rated(at: datetime, verdict: str) -> tuple[str, datetime, dict[str, object]]:
    return ("rated", at, {"verdict": verdict, "how": "token"})


KNOWN = [
    # Monday 10:00 to 12:00: two office hours; resolved Tuesday 10:00: 3 + 4 + 1 hours.
    Known(
        office(
            created=rome(23, 10), assignee="ann@shop.example", tags=("unhappy", "vip"),
            ack_sent=rome(23, 10) + 30 * S, responded=rome(23, 12), first_due=rome(24, 10),
            resolved=rome(24, 10), resolution_due=rome(30, 10), status=TicketStatus.RESOLVED,
            events=(_rated(rome(24, 12), "good"),),
        ),
        ack=30, first=7200, first_met=True, resolution=28800, resolution_met=True, rating=True,
    ),
    # Friday 17:00 to Monday 10:00: one hour on Friday, one on Monday (65 on the wall).
    Known(
        office(
            created=rome(27, 17), assignee="ann@shop.example", ack_sent=rome(27, 17) + 90 * S,
            responded=rome(30, 10), first_due=rome(30, 17), waiting_since=rome(30, 10),
            resolution_due=rome(4, 17, month=12),
        ),
        ack=90, first=7200, first_met=True,  # waiting on the customer: resolution not due
    ),
    # Monday 7 December 17:00 to Wednesday 10:00: Tuesday 8 is a holiday, so two hours.
    Known(
        office(
            created=rome(7, 17, month=12), assignee="bob@shop.example", language="en",
            ack_pending=True, responded=rome(9, 10, month=12), first_due=rome(9, 17, month=12),
            waiting_since=rome(9, 10, month=12), resolution_due=rome(15, 17, month=12),
        ),
        first=7200, first_met=True,
    ),
    # Calendar time; resolved, then the customer wrote again: open, and past its deadline.
    Known(
        Made(
            created=rome(24, 10), assignee="bob@shop.example", mailbox="sales", tags=("vip",),
            ack_sent=rome(24, 10) + 60 * S, responded=rome(24, 13), first_due=rome(24, 18),
            resolution_due=rome(30, 10), status=TicketStatus.OPEN,
            escalations=((1, rome(24, 18)), (-1, rome(24, 17))),
            events=(("followup", rome(26, 10), {"status_from": "resolved", "status_to": "open"}),),
        ),
        ack=60, first=10800, first_met=True, resolution_met=False, reopened=True, escalations=1,
    ),
    # Never answered: both deadlines missed.
    Known(
        Made(
            created=rome(2, 9, month=12), language=None, tags=("unhappy",),
            ack_sent=rome(2, 9, month=12) + 10 * S, first_due=rome(2, 17, month=12),
            resolution_due=rome(7, 9, month=12), status=TicketStatus.NEW,
        ),
        ack=10, first_met=False, resolution_met=False,
    ),
    # Solved by the FAQ answer before anyone wrote: no first response was owed.
    Known(
        Made(
            created=rome(3, 10, month=12), ack_sent=rome(3, 10, month=12) + 20 * S,
            first_due=rome(3, 18, month=12), resolved=rome(3, 11, month=12),
            resolution_due=rome(8, 10, month=12), status=TicketStatus.RESOLVED,
            events=(
                ("faq_offered", rome(3, 10, month=12), {"offered": [{"file": "a.md"}]}),
                ("resolved_by_customer", rome(3, 11, month=12), {"said": "risolto"}),
            ),
        ),
        ack=20, resolution=3600, resolution_met=True, faq=True,
    ),
    # Rated "solved", then "not solved": the latest counts.
    Known(
        Made(
            created=rome(10, 15, month=12), ack_sent=rome(10, 15, month=12) + 5 * S,
            responded=rome(10, 15, 30, month=12), first_due=rome(10, 23, month=12),
            resolved=rome(10, 16, month=12), resolution_due=rome(15, 15, month=12),
            status=TicketStatus.RESOLVED,
            events=(
                _rated(rome(11, 9, month=12), "good"),
                _rated(rome(11, 10, month=12), "bad"),
            ),
        ),
        ack=5, first=1800, first_met=True, resolution=3600, resolution_met=True, rating=False,
    ),
    # Spam and a merged ticket: nowhere, not even in the backlog.
    Known(
        Made(created=rome(25, 10), status=TicketStatus.SPAM, tags=("unhappy",),
             ack_sent=rome(25, 10) + S, first_due=rome(25, 18)),
        counted=False,
    ),
    Known(
        Made(created=rome(25, 11), status=TicketStatus.MERGED, responded=rome(25, 12),
             first_due=rome(25, 19), escalations=((1, rome(25, 19)),)),
        counted=False,
    ),
    # Before the period, still open: only in the backlog.
    Known(Made(created=rome(16, 10), status=TicketStatus.OPEN), counted=False),
]  # fmt: skip


# --- what the figures must be ---------------------------------------------------------


def _quantile(values: Sequence[int], fraction: float) -> int | None:
    """The continuous percentile, by the standard library; whole seconds, halves up."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(sorted(values), n=100, method="inclusive")
    return math.floor(cuts[round(fraction * 100) - 1] + 0.5)


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(100 * part / whole, 1)


def expected(members: list[Known], backlog: list[Known], end: datetime) -> Figures:
    def values(get: Callable[[Known], int | None], of: list[Known] = members) -> list[int]:
        return [v for k in of if (v := get(k)) is not None]

    unhappy = [k for k in members if "unhappy" in k.made.tags]
    others = [k for k in members if "unhappy" not in k.made.tags]
    decided = [k.first_met for k in members if k.first_met is not None]
    resolved = [k.resolution_met for k in members if k.resolution_met is not None]
    rated = [k.rating for k in members if k.rating is not None]
    waiting = [k for k in backlog if k.made.created < end and (k.made.resolved or end) >= end]
    oldest = min((k.made.created for k in waiting), default=None)
    return Figures(
        tickets_in=len(members),
        acknowledged=len(values(lambda k: k.ack)),
        ack_p50_seconds=_quantile(values(lambda k: k.ack), 0.5),
        ack_p99_seconds=_quantile(values(lambda k: k.ack), 0.99),
        first_response_p50_seconds=_quantile(values(lambda k: k.first), 0.5),
        first_response_p90_seconds=_quantile(values(lambda k: k.first), 0.9),
        first_response_sla_met_pct=_pct(sum(decided), len(decided)),
        resolution_sla_met_pct=_pct(sum(resolved), len(resolved)),
        resolution_p50_seconds=_quantile(values(lambda k: k.resolution), 0.5),
        resolution_p90_seconds=_quantile(values(lambda k: k.resolution), 0.9),
        reopened_pct=_pct(sum(k.reopened for k in members), len(members)),
        escalations=sum(k.escalations for k in members),
        backlog=len(waiting),
        backlog_oldest_age_seconds=int((end - oldest).total_seconds()) if oldest else None,
        unhappy=len(unhappy),
        unhappy_first_response_p50_seconds=_quantile(values(lambda k: k.first, unhappy), 0.5),
        others_first_response_p50_seconds=_quantile(values(lambda k: k.first, others), 0.5),
        ratings=len(rated),
        satisfaction_pct=_pct(sum(rated), len(rated)),
        faq_solved=sum(k.faq for k in members),
    )


def group_of(known: Known, by: Grouping) -> list[str | None]:
    made = known.made
    if by == "tag":
        return list(made.tags) or [None]
    local = made.created.astimezone(ROME).date()
    if by == "week":
        return [(local - timedelta(days=local.weekday())).isoformat()]
    if by == "day":
        return [local.isoformat()]
    return [getattr(made, by)]


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> ReportWorld:
    made = make_report_world(tmp_path, database_url, NOW)
    made.add(*(replace(k.made) for k in KNOWN))
    return made


@pytest.mark.parametrize("by", GROUPINGS)
def test_every_grouping_gives_the_known_figures(world: ReportWorld, by: Grouping) -> None:
    try:
        report = world.report(THREE_WEEKS, by)
    finally:
        world.app.close()
    counted = [k for k in KNOWN if k.counted]
    live = [k for k in KNOWN if k.made.status not in (TicketStatus.SPAM, TicketStatus.MERGED)]
    assert report.total == expected(counted, live, THREE_WEEKS.end)
    for group in report.groups:
        members = [k for k in counted if group.key in group_of(k, by)]
        pool = [k for k in live if group.key in group_of(k, by)] if group.start is None else live
        end = group.end or THREE_WEEKS.end
        assert group.figures == expected(members, pool, end), group.key
    keys = [g.key for g in report.groups]
    if by == "week":
        assert keys == ["2026-11-23", "2026-11-30", "2026-12-07"]
    elif by == "day":
        assert len(keys) == 21 and keys[0] == "2026-11-23" and keys[-1] == "2026-12-13"
    else:  # every group that has a ticket in the period or in the backlog, none twice
        wanted = {g for k in live for g in group_of(k, by)}
        assert sorted(keys, key=str) == sorted(wanted, key=str)


def test_the_weeks_by_hand(world: ReportWorld) -> None:
    """The arithmetic above, spelled out for the weeks: business time across a weekend
    and a holiday, the backlog with its oldest ticket, spam and merged left out."""
    try:
        report = world.report(THREE_WEEKS, "week")
    finally:
        world.app.close()
    first, second, third = (g.figures for g in report.groups)
    assert (first.tickets_in, second.tickets_in, third.tickets_in) == (3, 2, 2)
    # 30 s, 90 s, 60 s: the 99th percentile lies 98% of the way from 60 to 90
    assert (first.ack_p50_seconds, first.ack_p99_seconds) == (60, 89)
    # two office hours each for the Monday and the weekend one; three wall hours
    assert (first.first_response_p50_seconds, first.first_response_p90_seconds) == (7200, 10080)
    assert third.first_response_p50_seconds == 4500  # the holiday ticket: 2 h, not 41
    assert (first.resolution_sla_met_pct, first.reopened_pct, first.escalations) == (50.0, 33.3, 1)
    assert (second.first_response_sla_met_pct, second.faq_solved) == (0.0, 1)
    # the ticket from 16 November, open since: 13 days and 14 hours at the end of week one
    assert (first.backlog, first.backlog_oldest_age_seconds) == (3, 13 * 86400 + 14 * 3600)
    assert (third.backlog, third.ratings, third.satisfaction_pct) == (5, 1, 0.0)
    assert report.total.tickets_in == 7 and report.total.satisfaction_pct == 50.0


def test_an_empty_period_has_zeros_and_no_data(tmp_path: Path, database_url: str) -> None:
    world = make_report_world(tmp_path, database_url, NOW)
    try:
        report = world.report(THREE_WEEKS, "week")
        by_queue = world.report(THREE_WEEKS, "queue")
    finally:
        world.app.close()
    assert [g.figures.tickets_in for g in report.groups] == [0, 0, 0]
    assert report.total == expected([], [], THREE_WEEKS.end)
    assert report.total.first_response_p50_seconds is None
    assert report.total.reopened_pct is None and report.total.backlog == 0
    assert by_queue.groups == ()
