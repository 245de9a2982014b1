"""The return date an out-of-office text states (core/away.py), per language, and the texts
that state none."""

from __future__ import annotations

import time
from datetime import date

import pytest

from mailbridge.core.away import READ_LIMIT, return_date

TODAY = date(2026, 11, 23)
JAN_12 = date(2027, 1, 12)


@pytest.mark.parametrize(
    "text",
    [
        # English
        "I am out of office, back on 12 January.",
        "I will return on Monday 12th January 2027.",
        "Out of the office until 12/01.",
        "I'm away until January 12, 2027; for urgent matters write to team@shop.example.",
        "I am on holiday from 3 to 12 January.",
        "Available again from 12.01.2027",
        # Italian
        "Sarò di nuovo in ufficio il 12 gennaio.",
        "Sono in ferie, rientro il 12/01.",
        "Assente dal 3 al 12 gennaio.",
        "Sarò fuori ufficio fino al 12/01/2027 compreso.",
        # German
        "Ich bin ab 12. Januar wieder erreichbar.",
        "Ich bin zurück am 12.01.",
        "Abwesend vom 3. bis 12. Januar 2027.",
        # French
        "Je serai de retour le 12 janvier.",
        "Absent jusqu'au 12/01/2027.",
        "En congés du 3 au 12 janvier.",
        # ISO and ranges
        "Back 2027-01-12.",
        "Holiday 3-12 January.",
    ],
)
def test_a_stated_return_date_is_read(text: str) -> None:
    assert return_date(text, TODAY) == JAN_12


@pytest.mark.parametrize("argument", ["until 12/01", "12 jan", "2027-01-12", "12.01.2027", "12/1"])
def test_away_arguments(argument: str) -> None:
    assert return_date(argument, TODAY) == JAN_12


@pytest.mark.parametrize(
    "text",
    [
        "I am out of office. Thank you for your order of 3 January.",
        "Thank you for your mail. I am out of the office with limited access to mail.",
        "Invoice 12/2026 attached.",
        "I am back on 30 February.",  # no such day
        "Back on 12 January 2020.",  # in the past
        "Back on 12 January 2099.",  # not a return date anyone means
        "",
    ],
)
def test_texts_without_a_return_date(text: str) -> None:
    assert return_date(text, TODAY) is None


def test_a_date_without_a_year_is_the_next_one() -> None:
    assert return_date("back on 23 November", TODAY) == TODAY
    assert return_date("back on 22 November", TODAY) == date(2027, 11, 22)
    assert return_date("back on 2 December", TODAY) == date(2026, 12, 2)


def test_the_return_word_wins_over_a_range_word_and_the_latest_is_taken() -> None:
    text = "Away from 3 December. Back on 12 January, then in the office until 20 January."
    assert return_date(text, TODAY) == date(2027, 1, 20)
    assert return_date("Out from 3 December, back on 12 January", TODAY) == JAN_12


def test_a_time_is_not_a_date() -> None:
    assert return_date("back at 10:30 tomorrow", TODAY) is None
    assert return_date("back on 12/01 at 9.30", TODAY) == JAN_12


def test_only_the_first_read_limit_characters_are_read() -> None:
    text = "x" * READ_LIMIT + " back on 12 January"
    assert return_date(text, TODAY) is None


@pytest.mark.parametrize(
    "text",
    [
        "1" * 200_000,
        "1/" * 100_000,
        "12 " * 100_000,
        "back " * 50_000 + "12",
        "12. januarx" * 20_000,
        "jan 1" * 40_000,
    ],
)
def test_hostile_texts_take_bounded_time(text: str) -> None:
    began = time.thread_time()  # CPU time of this thread: the same on a busy machine
    return_date(text, TODAY)
    assert time.thread_time() - began < 0.5
