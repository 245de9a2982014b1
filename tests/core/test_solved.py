"""A customer's "solved" / "risolto" reply, told from a reply that only mentions it."""

from __future__ import annotations

import pytest

from mailbridge.core.faq import says_solved

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "reply",
    [
        "Risolto, grazie!",
        "Ho risolto da solo, grazie mille",
        "Problema risolto.",
        "Thanks, solved!",
        "I solved it myself, thank you!",
        "All sorted, cheers",
        "SOLVED",
        "risolto 👍",
    ],
)
def test_a_short_reply_that_says_solved_is_solved(reply: str) -> None:
    assert says_solved(reply)


@pytest.mark.parametrize(
    "reply",
    [
        "not solved yet",
        "Non è ancora risolto",
        "I haven't solved it",
        "Is it solved?",
        "grazie",
        "Thanks for the quick answer",
        "",
        "Solved the login part, but now the app crashes every time I open the orders page and "
        "I cannot see my invoices anymore, and the card payment shows twice on my statement "
        "which is really annoying because I need it for my accounting this week please help",
    ],
)
def test_a_reply_that_does_not_just_say_solved_is_not(reply: str) -> None:
    assert not says_solved(reply)


def test_the_phrases_are_the_operators_to_choose() -> None:
    assert says_solved("Sistemato, grazie", phrases=("sistemato",))
    assert not says_solved("Risolto, grazie", phrases=("sistemato",))
