"""The timing of a waiting cycle and the question test, on plain values (core/waiting.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from mailbridge.core.business_hours import BusinessCalendar
from mailbridge.core.waiting import (
    CLOSE,
    MAX_WAIT,
    REMINDER,
    cycle_deadline,
    ends_with_question,
    is_waiting_deadline,
    planned,
    wait_until,
    waiting_steps,
)

ROME = ZoneInfo("Europe/Rome")
OFFICE = BusinessCalendar.parse(
    "Europe/Rome",
    {day: ["09:00-13:00", "14:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
    closed=[datetime(2026, 12, 8).date()],  # a holiday, a Tuesday
)
FRIDAY_4PM = datetime(2026, 11, 27, 16, 0, tzinfo=ROME)
D = timedelta(days=1)


def test_calendar_time_is_plain_addition() -> None:
    assert wait_until(FRIDAY_4PM, 3 * D, None) == FRIDAY_4PM + 3 * D


def test_business_days_skip_the_weekend_and_keep_the_time_of_day() -> None:
    assert wait_until(FRIDAY_4PM, 3 * D, OFFICE) == datetime(2026, 12, 2, 16, 0, tzinfo=ROME)


def test_business_days_skip_closed_dates() -> None:
    monday = datetime(2026, 12, 7, 10, 0, tzinfo=ROME)
    assert wait_until(monday, D, OFFICE) == datetime(2026, 12, 9, 10, 0, tzinfo=ROME)


def test_a_start_out_of_hours_counts_from_the_next_opening() -> None:
    saturday = datetime(2026, 11, 28, 11, 0, tzinfo=ROME)
    assert wait_until(saturday, 2 * D, OFFICE) == datetime(2026, 12, 2, 9, 0, tzinfo=ROME)


def test_hours_beyond_whole_days_are_business_time() -> None:
    # Friday 16:00 + 1 day = Monday 16:00, + 3 business hours = Tuesday 10:00 (closes at 18).
    got = wait_until(FRIDAY_4PM, D + timedelta(hours=3), OFFICE)
    assert got == datetime(2026, 12, 1, 10, 0, tzinfo=ROME)


def test_a_huge_wait_is_capped_and_answers_at_once() -> None:
    assert wait_until(FRIDAY_4PM, timedelta(weeks=9999), None) == FRIDAY_4PM + MAX_WAIT
    assert wait_until(FRIDAY_4PM, timedelta(weeks=9999), OFFICE) > FRIDAY_4PM + 300 * D


def test_the_reminder_then_the_close_counted_from_when_the_reminder_went() -> None:
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    (reminder,) = waiting_steps(start, 3 * D, 7 * D, None, (), None)
    assert (reminder.step.level, reminder.at) == (REMINDER, start + 3 * D)
    assert reminder.step.deadline == cycle_deadline(start)
    sent_late = start + 4 * D
    fired = {(cycle_deadline(start), REMINDER)}
    (close,) = waiting_steps(start, 3 * D, 7 * D, sent_late, fired, None)
    assert (close.step.level, close.at) == (CLOSE, sent_late + 7 * D)
    assert waiting_steps(start, 3 * D, 7 * D, sent_late, fired | {close.step.key}, None) == []


def test_either_step_can_be_off() -> None:
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    (close,) = waiting_steps(start, None, 7 * D, None, (), None)
    assert (close.step.level, close.at) == (CLOSE, start + 7 * D), "from the start"
    (reminder,) = waiting_steps(start, 3 * D, timedelta(0), None, (), None)
    assert reminder.step.level == REMINDER
    assert waiting_steps(start, None, None, None, (), None) == []
    assert waiting_steps(None, 3 * D, 7 * D, None, (), None) == []


def test_a_new_cycle_has_a_new_name() -> None:
    first = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    second = first + timedelta(seconds=1)
    assert cycle_deadline(first) != cycle_deadline(second)
    assert is_waiting_deadline(cycle_deadline(first))
    assert not is_waiting_deadline("resolution")
    assert len(cycle_deadline(datetime(9999, 1, 1, tzinfo=UTC))) <= 32


def test_planned_shows_both_steps_until_the_reminder_went() -> None:
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert planned(start, 3 * D, 7 * D, None, None) == (start + 3 * D, start + 10 * D)
    assert planned(start, 3 * D, 7 * D, start + 4 * D, None) == (None, start + 11 * D)
    assert planned(None, 3 * D, 7 * D, None, None) == (None, None)


def test_an_answer_asks_when_its_last_line_ends_with_a_question_mark() -> None:
    assert ends_with_question("Hello Ada,\n\nCould you send the serial number?\n\n")
    assert ends_with_question("Può mandarci una foto？")
    assert not ends_with_question("Is it on?\nA new one is on its way.")
    assert not ends_with_question("")
    assert not ends_with_question("?" * 10 + "x" * 5000)


def test_the_question_test_is_bounded_on_huge_text() -> None:
    assert ends_with_question("\n" * 1_000_000 + "why?") is True
    assert ends_with_question("a" * 10_000_000) is False
