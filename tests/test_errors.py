"""Errors as they are stored and shown: class, first line, bounded, no control characters."""

from __future__ import annotations

import pytest

from mailbridge.errors import ERROR_CHARS, PermanentError, describe_error, one_line

pytestmark = pytest.mark.unit


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_an_error_is_its_class_and_the_first_line_of_its_message() -> None:
    error = ValueError(
        "value too long for type character varying(998)\n"
        "[SQL: INSERT INTO article ...]\n[parameters: ('the mail',)]"
    )
    assert describe_error(error) == ("ValueError: value too long for type character varying(998)")
    assert describe_error(PermanentError("")) == "PermanentError"
    assert describe_error(Unprintable()) == "Unprintable"


def test_control_characters_and_length_are_taken_out() -> None:
    error = ValueError("\x1b[31mred\x00 and\tmore " + "x" * 1_000)
    described = describe_error(error)
    assert described.startswith("ValueError: [31mred and more xxx")
    assert len(described) == ERROR_CHARS and described.endswith("…")
    assert one_line("  first\r\nsecond", 10) == "first"
    assert one_line("") == ""
