"""Named calendars: [[calendar]] beside the single [calendar] table, the calendar of a
mailbox and of a queue, a mailbox's default SLA policy, and the errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbridge.config import load_config
from tests.support.config_files import MINIMAL, SECRETS, problem, write

pytestmark = pytest.mark.unit

SECOND_MAILBOX = """
[[mailbox]]
name = "us"
address = "help@example.com"
host = "imap.example.com"
username = "help@example.com"
password_env = "MAILBRIDGE_IMAP_PASSWORD"
"""
CALENDARS = """
[[calendar]]
name = "rome"
timezone = "Europe/Rome"
holidays = "IT"

[[calendar]]
name = "new-york"
timezone = "America/New_York"
holidays = "US"
"""


def with_mailbox_keys(keys: str, text: str = MINIMAL) -> str:
    """MINIMAL with `keys` added to its [[mailbox]] table."""
    return text.replace('password_env = "MAILBRIDGE_IMAP_PASSWORD"\n', f"{keys}\n", 1).replace(
        'username = "support@example.com"\n',
        'username = "support@example.com"\npassword_env = "MAILBRIDGE_IMAP_PASSWORD"\n',
        1,
    )


def test_the_single_calendar_table_is_the_default_calendar(tmp_path: Path) -> None:
    text = MINIMAL + '\n[calendar]\ntimezone = "Europe/Rome"\n'
    config = load_config(write(tmp_path, text), SECRETS)
    assert [c.name for c in config.calendars] == ["default"]
    assert config.calendar.timezone == "Europe/Rome"
    assert config.ticket_calendar("support", "support") is config.calendar


def test_with_several_calendars_the_first_is_the_default_unless_one_is_named_so(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, MINIMAL + CALENDARS), SECRETS)
    assert config.calendar.name == "rome"
    named_default = CALENDARS + '\n[[calendar]]\nname = "default"\ntimezone = "Asia/Tokyo"\n'
    config = load_config(write(tmp_path, MINIMAL + named_default), SECRETS)
    assert config.calendar.timezone == "Asia/Tokyo"


def test_queue_calendar_wins_over_the_mailboxs_which_wins_over_the_default(
    tmp_path: Path,
) -> None:
    text = (
        with_mailbox_keys('calendar = "new-york"')
        + SECOND_MAILBOX
        + CALENDARS
        + '\n[tickets.queues.billing]\ncalendar = "rome"\n'
    )
    config = load_config(write(tmp_path, text), SECRETS)
    assert config.ticket_calendar("support", "support").name == "new-york"
    assert config.ticket_calendar("support", "billing").name == "rome"
    assert config.ticket_calendar("us", "us").name == "rome"  # none of its own: the default
    assert config.ticket_calendar("us", "billing").name == "rome"
    assert config.ticket_calendar("gone", "gone").name == "rome"  # no longer configured


def test_a_mailbox_names_its_default_policy(tmp_path: Path) -> None:
    text = (
        with_mailbox_keys('sla = "premium"')
        + SECOND_MAILBOX
        + '\n[[sla]]\nname = "premium"\nfirst_response = "1h"\nresolution = "1d"\n'
    )
    config = load_config(write(tmp_path, text), SECRETS)
    assert (config.mailbox_sla("support"), config.mailbox_sla("us")) == ("premium", None)


@pytest.mark.parametrize(
    ("text", "expectation"),
    [
        (
            with_mailbox_keys('calendar = "milan"') + CALENDARS,
            "mailbox[0].calendar: expected one of the calendar names (rome, new-york), not 'milan'",
        ),
        (
            with_mailbox_keys('calendar = "rome"'),  # a single [calendar] is "default"
            "mailbox[0].calendar: expected one of the calendar names (default), not 'rome'",
        ),
        (
            MINIMAL + CALENDARS + '\n[tickets.queues.billing]\ncalendar = "tokyo"\n',
            "tickets.queues.billing.calendar: expected one of the calendar names "
            "(rome, new-york), not 'tokyo'",
        ),
        (
            with_mailbox_keys('sla = "gold"'),
            "mailbox[0].sla: expected one of the [[sla]] policy names (standard), not 'gold'",
        ),
        (
            MINIMAL + CALENDARS + '\n[[calendar]]\nname = "rome"\n',
            'calendar: expected a different name for each calendar, but "rome" names two',
        ),
        (
            MINIMAL + "\n[[calendar]]\ntimezone = 'UTC'\n[[calendar]]\ntimezone = 'UTC'\n",
            '"default" names two (a [[calendar]] without a name is "default")',
        ),
        (
            MINIMAL + CALENDARS + '\n[[calendar]]\nname = "x"\ntimezone = "Mars/Olympus"\n',
            "calendar[2].timezone: expected an IANA time zone like Europe/Rome",
        ),
        ("calendar = []\n" + MINIMAL, "calendar: expected Tuple should have at least 1 item"),
        ("calendar = 3\n" + MINIMAL, "calendar: expected Input should be a valid dictionary"),
    ],
)
def test_bad_names_are_explained_with_their_key(
    tmp_path: Path, text: str, expectation: str
) -> None:
    message = problem(tmp_path, text)
    assert str(tmp_path / "mailbridge.toml") in message
    assert expectation in message


def test_hostile_names_neither_load_nor_echo_raw(tmp_path: Path) -> None:
    # A calendar name is a word: no line breaks, no header or path syntax, at most 64 chars.
    for name in ('"rome\\nX-Injected: 1"', '"../../etc"', f'"{"r" * 65}"', '""'):
        message = problem(tmp_path, MINIMAL + f"\n[[calendar]]\nname = {name}\n")
        assert "calendar[0].name: expected String should" in message
    # A mailbox naming one quotes it escaped: the error stays one line per problem.
    message = problem(tmp_path, with_mailbox_keys('calendar = "x\\nSubject: hi"') + CALENDARS)
    assert message.count("\n") == 0 and "'x\\nSubject: hi'" in message
