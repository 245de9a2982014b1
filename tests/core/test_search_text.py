"""The words of a search query, their FTS5 form and the snippet of a hit: plain values."""

from __future__ import annotations

import time

from mailbridge.core.search_text import MAX_WORDS, fold, fts5_match, search_words, snippet


def test_words_are_runs_of_letters_and_digits() -> None:
    assert search_words('fattura "marzo" -2026* NEAR(x) OR:y') == (
        "fattura",
        "marzo",
        "2026",
        "NEAR",
        "x",
        "OR",
        "y",
    )
    assert search_words('" * - : ( ) ^ _') == ()
    assert search_words("Perché perché PERCHÉ") == ("Perché",)


def test_a_long_query_is_bounded() -> None:
    assert len(search_words(" ".join(f"w{i}" for i in range(1000)))) == MAX_WORDS
    assert search_words("a" * 10_000) == ("a" * 200,)


def test_the_fts5_form_quotes_every_word() -> None:
    assert fts5_match(["NEAR", "OR"]) == '"NEAR" "OR"'
    assert fts5_match(['say"hi']) == '"say""hi"'


def test_folding_keeps_positions() -> None:
    assert fold("Perché È così") == "perche e cosi"
    assert len(fold("Straße ǅ")) == len("Straße ǅ")


def test_the_snippet_marks_the_match_and_is_bounded() -> None:
    body = "x " * 500 + "la ricevuta è sbagliata " + "y " * 500
    cut = snippet([body], ["ricevuta"])
    assert "[ricevuta]" in cut and cut.startswith("…") and cut.endswith("…")
    assert len(cut) <= 170
    assert snippet(["", "Perché no"], ["perche"]) == "[Perché] no"
    assert snippet(["stampanti rotte"], ["stampante"]) == "[stampanti] rotte"
    assert snippet(["nothing here"], ["absent"]) == "nothing here"


def test_the_snippet_of_a_huge_text_is_quick() -> None:
    started = time.thread_time()  # CPU time of this thread: the same on a busy machine
    snippet(["a" * 5_000_000], ["aab"] * 20)
    assert time.thread_time() - started < 1
