"""SLA arithmetic with plain values: policies, deadlines on both clocks, escalation steps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailbridge.core.business_hours import BusinessCalendar
from mailbridge.core.sla import (
    Step,
    calendar_name,
    compute_deadlines,
    due_now,
    elapsed,
    next_moment,
    number_steps,
    overdue_by,
    pending_steps,
    raised_priority,
    select_policy,
    shift,
)

pytestmark = pytest.mark.unit

ROME = ZoneInfo("Europe/Rome")
H = timedelta(hours=1)
ITALY_2026 = frozenset({
    date(2026, 1, 1), date(2026, 1, 6), date(2026, 4, 5), date(2026, 4, 6), date(2026, 4, 25),
    date(2026, 5, 1), date(2026, 6, 2), date(2026, 8, 15), date(2026, 10, 4), date(2026, 11, 1),
    date(2026, 12, 8), date(2026, 12, 25), date(2026, 12, 26),
})  # fmt: skip
OFFICE = BusinessCalendar.parse(
    "Europe/Rome",
    {day: ["09:00-13:00", "14:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
    ITALY_2026 | {date(2026, 12, 24), date(2027, 1, 1), date(2027, 1, 6)},
)


def at(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None
    return moment


@dataclass(frozen=True)
class Policy:
    name: str
    mailboxes: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()


@dataclass(frozen=True)
class Level:
    at: timedelta
    deadline: str = "first_response"
    notify: str | None = None
    raise_priority: str | None = None


# --- policies and priorities --------------------------------------------------------------

POLICIES = (
    Policy("vip-billing", mailboxes=("billing",), priorities=("urgent",)),
    Policy("billing", mailboxes=("billing",)),
    Policy("sales-queue", queues=("sales",)),
    Policy("standard"),
)


@pytest.mark.parametrize(
    ("mailbox", "priority", "queue", "expected"),
    [
        ("billing", "urgent", None, "vip-billing"),
        ("billing", "normal", None, "billing"),
        ("support", "urgent", None, "standard"),
        ("support", "normal", "sales", "sales-queue"),
        ("sales", "normal", None, "sales-queue"),  # no queue given: the mailbox's name
        ("billing", "normal", "sales", "billing"),  # first match wins
    ],
)
def test_the_first_matching_policy_applies(
    mailbox: str, priority: str, queue: str | None, expected: str
) -> None:
    assert select_policy(POLICIES, mailbox, priority, queue).name == expected


# A mailbox's own default (`[[mailbox]] sla`) stands where the policy without keys stands.
WITH_MAILBOX_DEFAULTS = (*POLICIES, Policy("premium"))


@pytest.mark.parametrize(
    ("mailbox", "priority", "queue", "mailbox_default", "expected"),
    [
        ("support", "normal", None, "premium", "premium"),  # nothing keyed matches
        ("support", "normal", None, None, "standard"),  # no default of its own
        ("billing", "normal", None, "premium", "billing"),  # a keyed policy still wins
        ("support", "normal", "sales", "premium", "sales-queue"),
        ("support", "normal", None, "no-such-policy", "standard"),  # checked at load
    ],
)
def test_the_mailbox_default_replaces_the_keyless_policy(
    mailbox: str, priority: str, queue: str | None, mailbox_default: str | None, expected: str
) -> None:
    chosen = select_policy(WITH_MAILBOX_DEFAULTS, mailbox, priority, queue, mailbox_default)
    assert chosen.name == expected


def test_a_keyless_policy_before_keyed_ones_still_shadows_them() -> None:
    # The walk keeps its order: the mailbox default only takes the keyless policy's place.
    shadowing = (Policy("standard"), Policy("billing", mailboxes=("billing",)), Policy("gold"))
    assert select_policy(shadowing, "billing", "normal", None, "gold").name == "gold"
    assert select_policy(shadowing, "billing", "normal").name == "standard"


@pytest.mark.parametrize(
    ("queue", "mailbox", "expected"),
    [
        ("new-york", "rome", "new-york"),  # the queue's calendar wins
        (None, "rome", "rome"),
        (None, None, "default"),
        ("", "", "default"),
    ],
)
def test_a_tickets_calendar_is_its_queues_then_its_mailboxs(
    queue: str | None, mailbox: str | None, expected: str
) -> None:
    assert calendar_name(queue, mailbox, "default") == expected


def test_without_a_default_policy_nothing_matches() -> None:
    with pytest.raises(LookupError, match="no SLA policy"):
        select_policy(POLICIES[:1], "support", "normal")


@pytest.mark.parametrize(
    ("current", "target", "expected"),
    [
        ("normal", "high", "high"),
        ("urgent", "high", "urgent"),
        ("low", None, "low"),
        ("high", "high", "high"),
        ("custom", "low", "custom"),
        ("custom", "high", "high"),
    ],
)
def test_raising_never_lowers(current: str, target: str | None, expected: str) -> None:
    assert raised_priority(current, target) == expected


# --- deadlines on both clocks ---------------------------------------------------------------

DEADLINE_CASES = [
    # arrival, target, clock, deadline
    # within a day; across lunch
    ("2026-11-23T10:00+01:00", 2 * H, OFFICE, "2026-11-23T12:00+01:00"),
    ("2026-11-23T12:00+01:00", 2 * H, OFFICE, "2026-11-23T15:00+01:00"),
    # weekend: Friday late afternoon to Monday
    ("2026-11-27T17:00+01:00", 8 * H, OFFICE, "2026-11-30T17:00+01:00"),
    # arriving outside business hours: before opening, at night, on Sunday, on a holiday
    ("2026-11-23T07:12+01:00", 1 * H, OFFICE, "2026-11-23T10:00+01:00"),
    ("2026-11-23T22:00+01:00", 1 * H, OFFICE, "2026-11-24T10:00+01:00"),
    ("2026-11-29T11:00+01:00", 8 * H, OFFICE, "2026-11-30T18:00+01:00"),
    ("2026-12-08T10:00+01:00", 1 * H, OFFICE, "2026-12-09T10:00+01:00"),
    # public holiday inside the target (Immacolata, Tuesday 8 December)
    ("2026-12-07T16:00+01:00", 8 * H, OFFICE, "2026-12-09T16:00+01:00"),
    # an extra closed date (24 December) next to two holidays (25, 26)
    ("2026-12-23T17:00+01:00", 2 * H, OFFICE, "2026-12-28T10:00+01:00"),
    # clocks go forward on Sunday 29 March, back on Sunday 25 October: business hours
    # are wall-clock hours on either side
    ("2026-03-27T17:00+01:00", 2 * H, OFFICE, "2026-03-30T10:00+02:00"),
    ("2026-10-23T17:00+02:00", 2 * H, OFFICE, "2026-10-26T10:00+01:00"),
    # ... while calendar hours are elapsed time: 24 h is 25 h of wall clock in spring
    ("2026-03-28T12:00+01:00", 24 * H, None, "2026-03-29T13:00+02:00"),
    ("2026-10-24T12:00+02:00", 24 * H, None, "2026-10-25T11:00+01:00"),
    # targets longer than a week
    ("2026-11-23T09:00+01:00", 60 * H, OFFICE, "2026-12-02T13:00+01:00"),
    # 336 business hours: 42 office days, across Christmas and Epiphany
    ("2026-11-30T09:00+01:00", timedelta(weeks=2), OFFICE, "2027-02-02T18:00+01:00"),
    ("2026-11-30T09:00+01:00", 80 * H, OFFICE, "2026-12-14T18:00+01:00"),
    ("2026-11-23T10:00+01:00", timedelta(days=9), None, "2026-12-02T10:00+01:00"),
]


@pytest.mark.parametrize(("arrival", "target", "cal", "expected"), DEADLINE_CASES)
def test_deadline(
    arrival: str, target: timedelta, cal: BusinessCalendar | None, expected: str
) -> None:
    due = compute_deadlines(at(arrival), target, target, cal)
    assert due.first_response == due.resolution == at(expected)
    assert due.first_response.tzinfo is not None
    assert elapsed(at(arrival), due.first_response, cal) == target


def test_paused_time_moves_only_the_resolution_deadline() -> None:
    start = at("2026-11-23T09:00+01:00")
    plain = compute_deadlines(start, 4 * H, 16 * H, OFFICE)
    paused = compute_deadlines(start, 4 * H, 16 * H, OFFICE, paused=3 * H)
    assert paused.first_response == plain.first_response == at("2026-11-23T13:00+01:00")
    assert plain.resolution == at("2026-11-24T18:00+01:00")
    assert paused.resolution == at("2026-11-25T12:00+01:00")
    assert paused.resolution == shift(plain.resolution, 3 * H, OFFICE)


@pytest.mark.parametrize(
    ("moment", "offset", "cal", "expected"),
    [
        # a warning an hour before a deadline just after Monday's opening fires Friday
        ("2026-11-30T09:30+01:00", -H, OFFICE, "2026-11-27T17:30+01:00"),
        ("2026-11-30T10:00+01:00", -H, OFFICE, "2026-11-30T09:00+01:00"),
        # four business hours after a Friday afternoon deadline is Monday morning
        ("2026-11-27T16:00+01:00", 4 * H, OFFICE, "2026-11-30T11:00+01:00"),
        ("2026-11-27T16:00+01:00", timedelta(0), OFFICE, "2026-11-27T16:00+01:00"),
        # calendar hours: plain arithmetic, nights and weekends included
        ("2026-11-30T09:30+01:00", -H, None, "2026-11-30T08:30+01:00"),
        ("2026-11-27T16:00+01:00", 4 * H, None, "2026-11-27T20:00+01:00"),
    ],
)
def test_shift(moment: str, offset: timedelta, cal: BusinessCalendar | None, expected: str) -> None:
    assert shift(at(moment), offset, cal) == at(expected)


def test_elapsed_counts_business_time_and_never_goes_negative() -> None:
    friday, monday = at("2026-11-27T17:00+01:00"), at("2026-11-30T10:00+01:00")
    assert elapsed(friday, monday, OFFICE) == 2 * H
    assert elapsed(friday, monday, None) == timedelta(days=2, hours=17)
    assert elapsed(monday, friday, OFFICE) == timedelta(0)


def test_overdue_by_whole_minutes() -> None:
    due = at("2026-11-23T10:00+01:00")
    assert overdue_by(due, due + timedelta(minutes=90, seconds=59)) == timedelta(minutes=90)
    assert overdue_by(due, due - H) == timedelta(0)


# --- escalation steps -------------------------------------------------------------------

LEVELS = (
    Level(4 * H, notify="manager@x.example", raise_priority="urgent"),
    Level(-H, notify="team@x.example"),
    Level(timedelta(0), notify="lead@x.example", raise_priority="high"),
    Level(-2 * H),
    Level(timedelta(0), deadline="resolution"),
)


def test_steps_are_numbered_by_time_warnings_counting_back_from_the_deadline() -> None:
    steps = number_steps(LEVELS)
    assert [(s.deadline, s.level, s.at) for s in steps] == [
        ("first_response", -2, -2 * H),
        ("first_response", -1, -H),
        ("first_response", 1, timedelta(0)),
        ("first_response", 2, 4 * H),
        ("resolution", 1, timedelta(0)),
    ]
    assert [s.is_warning for s in steps] == [True, True, False, False, False]
    assert steps[3] == Step("first_response", 2, 4 * H, "manager@x.example", "urgent")


STEPS = number_steps(LEVELS[:3])
DUE = at("2026-11-23T17:00+01:00")  # first-response deadline, Monday
DEADLINES = {"first_response": DUE, "resolution": at("2026-11-27T17:00+01:00")}


def keys(due: list[object]) -> list[tuple[str, int]]:
    return [d.step.key for d in due]  # type: ignore[attr-defined]


def test_steps_come_due_in_order_and_each_only_until_it_fired() -> None:
    fired: set[tuple[str, int]] = set()
    before = pending_steps(STEPS, DEADLINES, fired, DUE - 2 * H, None)
    assert next_moment(before) == DUE - H
    assert due_now(before, DUE - 2 * H) == []

    warn = pending_steps(STEPS, DEADLINES, fired, DUE - H, None)
    assert keys(due_now(warn, DUE - H)) == [("first_response", -1)]
    fired.add(("first_response", -1))

    level1 = pending_steps(STEPS, DEADLINES, fired, DUE, None)
    assert keys(due_now(level1, DUE)) == [("first_response", 1)]
    fired.add(("first_response", 1))
    after = pending_steps(STEPS, DEADLINES, fired, DUE, None)
    assert due_now(after, DUE) == [] and next_moment(after) == DUE + 4 * H

    fired.add(("first_response", 2))
    assert pending_steps(STEPS, DEADLINES, fired, DUE + 4 * H, None) == []


def test_a_late_sweep_fires_every_passed_level_in_order_and_drops_the_moot_warning() -> None:
    late = DUE + 5 * H
    due = due_now(pending_steps(STEPS, DEADLINES, set(), late, None), late)
    assert keys(due) == [("first_response", 1), ("first_response", 2)]
    assert [d.at for d in due] == [DUE, DUE + 4 * H]
    assert all(d.deadline_at == DUE for d in due)


def test_a_met_or_paused_deadline_has_nothing_pending() -> None:
    steps = number_steps(LEVELS)
    met = {"first_response": None, "resolution": DEADLINES["resolution"]}
    pending = pending_steps(steps, met, set(), DUE + 5 * H, None)
    assert keys(pending) == [("resolution", 1)]
    assert (
        pending_steps(steps, {"first_response": None, "resolution": None}, set(), DUE, None) == []
    )
    assert next_moment([]) is None


def test_business_hours_steps_fire_on_business_time() -> None:
    monday_opening = at("2026-11-30T09:30+01:00")
    deadlines = {"first_response": monday_opening, "resolution": None}
    friday = at("2026-11-27T12:00+01:00")
    pending = pending_steps(STEPS, deadlines, set(), friday, OFFICE)
    assert [(d.step.level, d.at) for d in pending] == [
        (-1, at("2026-11-27T17:30+01:00")),
        (1, monday_opening),
        (2, at("2026-11-30T14:30+01:00")),
    ]


def test_steps_at_the_same_moment_keep_their_configured_order() -> None:
    steps = number_steps((Level(timedelta(0)), Level(timedelta(0), deadline="resolution")))
    same = {"first_response": DUE, "resolution": DUE}
    assert keys(due_now(pending_steps(steps, same, set(), DUE, None), DUE)) == [
        ("first_response", 1),
        ("resolution", 1),
    ]


def test_results_are_utc_aware() -> None:
    due = compute_deadlines(datetime(2026, 11, 23, 9, tzinfo=UTC), H, H, OFFICE)
    assert due.first_response.utcoffset() == timedelta(0)
    assert due.first_response.astimezone(ROME).hour == 11
