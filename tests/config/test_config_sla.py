"""The [[sla]] and [calendar] sections: escalation levels, chasers, opening hours, holidays."""

from __future__ import annotations

from datetime import date, time, timedelta
from pathlib import Path

import pytest

from mailbridge.config import load_config, parse_offset
from tests.support.config_files import EXAMPLE, MINIMAL, SECRETS, problem, write

pytestmark = pytest.mark.unit

H = timedelta(hours=1)

LEVELS = """
[[sla.levels]]
at = "+4h"
notify = "manager@example.com"
raise_priority = "urgent"

[[sla.levels]]
at = "-1h"

[[sla.levels]]
at = "0"
notify = "lead@example.com"
raise_priority = "high"

[[sla.levels]]
deadline = "resolution"
at = "-30m"

[sla.chaser]
raise_priority = "high"
shorten_to = "2h"
"""


def test_the_example_has_levels_a_chaser_and_an_italian_calendar() -> None:
    config = load_config(EXAMPLE, SECRETS)
    standard = config.sla[1]
    assert standard.business_hours
    assert [(s.deadline, s.level, s.at, s.notify) for s in standard.steps] == [
        ("first_response", -1, -H, "team@example.com"),
        ("first_response", 1, timedelta(0), "lead@example.com"),
        ("first_response", 2, 4 * H, "manager@example.com"),
        ("resolution", 1, timedelta(0), "lead@example.com"),
    ]
    assert standard.chaser.raise_priority == "high"
    assert standard.chaser.shorten_to == 2 * H
    calendar = config.calendar
    assert calendar.holidays == "IT"
    cal = calendar.business_calendar(2026)
    assert date(2026, 12, 8) in cal.closed  # Immacolata, from the holidays package
    assert date(2026, 12, 24) in cal.closed  # an extra closed date
    assert date(2027, 4, 25) in cal.closed  # later years too
    assert cal.hours[0] == ((time(9), time(13)), (time(14), time(18)))
    assert 5 not in cal.hours  # Saturday is closed


def test_levels_are_parsed_and_numbered(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + LEVELS), SECRETS)
    policy = config.sla[0]
    assert [(s.deadline, s.level, s.at) for s in policy.steps] == [
        ("first_response", -1, -H),
        ("first_response", 1, timedelta(0)),
        ("first_response", 2, 4 * H),
        ("resolution", -1, -timedelta(minutes=30)),
    ]
    assert policy.steps[2].raise_priority == "urgent"


def test_a_reloaded_policy_numbers_its_own_levels(tmp_path: Path) -> None:
    """Steps are numbered once per set of levels (the sweep asks twice per ticket); a
    configuration read again with other levels gets its own, not the ones read before."""
    before = load_config(write(tmp_path, MINIMAL + LEVELS), SECRETS).sla[0]
    after = load_config(write(tmp_path, MINIMAL), SECRETS).sla[0]
    again = load_config(write(tmp_path, MINIMAL + LEVELS), SECRETS).sla[0]
    assert [s.level for s in before.steps] == [-1, 1, 2, -1]
    assert [s.level for s in after.steps] == [1]
    assert again.steps == before.steps


def test_without_levels_a_policy_escalates_once_at_the_first_response(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), SECRETS)
    assert [(s.deadline, s.level, s.at, s.notify) for s in config.sla[0].steps] == [
        ("first_response", 1, timedelta(0), None)
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-1h", -H),
        ("0", timedelta(0)),
        ("+4h", 4 * H),
        ("4h", 4 * H),
        (" - 30 m ", -timedelta(minutes=30)),
        ("-2d", -timedelta(days=2)),
        (0, timedelta(0)),
        (-90, -timedelta(seconds=90)),
    ],
)
def test_offsets(text: str | int, expected: timedelta) -> None:
    assert parse_offset(text) == expected


@pytest.mark.parametrize("text", ["", "4", "-", "1.5h", "an hour", "+-1h", True, None])
def test_bad_offsets(text: object) -> None:
    with pytest.raises(ValueError, match="an offset from the deadline"):
        parse_offset(text)


@pytest.mark.parametrize(
    ("replace", "key", "expectation"),
    [
        (
            'at = "-1h"',
            "sla[0].levels[1].at",
            "expected an offset from the deadline like -1h (before), 0 (at) or +4h (after)",
        ),
        (
            'deadline = "resolution"',
            "sla[0].levels[3].deadline",
            "expected Input should be 'first_response' or 'resolution'",
        ),
        (
            'raise_priority = "high"\n\n[[sla.levels]]',
            "sla[0].levels[2].raise_priority",
            "expected Input should be 'low', 'normal', 'high' or 'urgent'",
        ),
        ('notify = "lead@example.com"', "sla[0].levels[2].notify", "expected String should"),
        ('shorten_to = "2h"', "sla[0].chaser.shorten_to", "expected a duration like"),
    ],
)
def test_bad_levels_name_file_key_and_expectation(
    tmp_path: Path, replace: str, key: str, expectation: str
) -> None:
    broken = {
        "sla[0].levels[1].at": 'at = "an hour early"',
        "sla[0].levels[3].deadline": 'deadline = "reply"',
        "sla[0].levels[2].raise_priority": 'raise_priority = "asap"\n\n[[sla.levels]]',
        "sla[0].levels[2].notify": 'notify = "the lead"',
        "sla[0].chaser.shorten_to": 'shorten_to = "soon"',
    }[key]
    message = problem(tmp_path, MINIMAL + LEVELS.replace(replace, broken, 1))
    assert str(tmp_path / "mailbridge.toml") in message
    assert f"{key}: {expectation}" in message


def test_two_levels_at_one_moment_are_refused(tmp_path: Path) -> None:
    message = problem(tmp_path, MINIMAL + LEVELS.replace('at = "+4h"', 'at = "0"'))
    assert "sla[0].levels: expected one level per moment" in message


def test_unknown_priority_in_match_keys(tmp_path: Path) -> None:
    message = problem(
        tmp_path,
        MINIMAL + '\n[[sla]]\nname = "x"\nfirst_response = "1h"\n'
        'resolution = "1d"\npriorities = ["critical"]\n',
    )
    assert "sla[1].priorities[0]: expected Input should be 'low'" in message


@pytest.mark.parametrize(
    ("calendar", "key", "expectation"),
    [
        (
            'holidays = "XX"',
            "calendar.holidays",
            "expected a country code of the holidays package, like IT, DE or US, not 'XX'",
        ),
        (
            'holidays = "IT"\nsubdivision = "ZZ"',
            "calendar.subdivision",
            "expected a subdivision of IT",
        ),
        (
            'subdivision = "RM"',
            "calendar.subdivision",
            "expected no subdivision without a holidays country",
        ),
        ('closed = ["24 December"]', "calendar.closed[0]", "expected Input should be a valid"),
        (
            '[calendar.hours]\nmon = ["9-5"]',
            "calendar.hours",
            'expected opening hours like mon = ["09:00-13:00", "14:00-18:00"] '
            "(mon: '9-5' is not an interval like '09:00-13:00')",
        ),
        (
            '[calendar.hours]\nmonday = ["09:00-13:00"]\nmon = ["14:00-18:00"]',
            "calendar.hours",
            "given twice",
        ),
        ('[calendar.hours]\nfunday = ["09:00-13:00"]', "calendar.hours", "unknown day 'funday'"),
        ("[calendar.hours]\nsat = []", "calendar.hours", "no business hours on any day"),
    ],
)
def test_bad_calendar_is_explained(
    tmp_path: Path, calendar: str, key: str, expectation: str
) -> None:
    message = problem(tmp_path, MINIMAL + "\n[calendar]\n" + calendar + "\n")
    assert f"{key}: " in message and expectation in message


def test_calendar_with_a_subdivision_and_its_own_hours(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """
[calendar]
timezone = "Europe/Rome"
holidays = "it"
subdivision = "rm"
closed = [2026-08-14, "2026-08-17"]

[calendar.hours]
Monday = ["08:30-12:30", "13:30-17:30"]
sat = ["09:00-12:00"]
"""
    )
    calendar = load_config(write(tmp_path, text), SECRETS).calendar
    assert (calendar.holidays, calendar.subdivision) == ("IT", "RM")
    cal = calendar.business_calendar(2026)
    assert {date(2026, 6, 29), date(2026, 8, 14), date(2026, 8, 17)} <= cal.closed
    assert cal.hours[5] == ((time(9), time(12)),)
    assert 1 not in cal.hours  # Tuesday not listed: closed
    assert calendar.business_calendar(2026) is cal  # built once per year


def test_default_calendar_is_weekdays_nine_to_six_in_utc(tmp_path: Path) -> None:
    calendar = load_config(write(tmp_path, MINIMAL), SECRETS).calendar
    cal = calendar.business_calendar(2026)
    assert calendar.timezone == "UTC" and not cal.closed
    assert sorted(cal.hours) == [0, 1, 2, 3, 4]
    assert cal.hours[0] == ((time(9), time(18)),)
