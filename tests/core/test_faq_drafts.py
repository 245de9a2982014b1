"""A draft FAQ entry from a staff answer, on plain values: the `#faq save` argument, the
keywords of a question, the file name, and a file that reads back as this draft whatever
the title holds (core/faq_drafts.py)."""

from __future__ import annotations

from datetime import date
from itertools import islice

import pytest

from mailbridge.core.faq import parse_entry
from mailbridge.core.faq_drafts import (
    ANSWER_CHARS,
    TITLE_CHARS,
    Draft,
    DraftRefused,
    checked_answer,
    draft_language,
    draft_text,
    file_names,
    question_keywords,
    save_title,
    slug,
)
from tests.support.faq_drafts import DRAFT

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("argument", "title"),
    [
        ('save "How do I reset my password?"', "How do I reset my password?"),
        ("save How do I reset my password?", "How do I reset my password?"),
        ("SAVE\t'Reset'", "Reset"),
        ("save \u201cCome chiudo il conto?\u201d", "Come chiudo il conto?"),  # “…” from a phone
        ("save \u00abChiudere il conto\u00bb", "Chiudere il conto"),
        ('save "a "quoted" word"', 'a "quoted" word'),
        ('save "half open', '"half open'),
        ('save "  spaced \t out  "', "spaced out"),
    ],
)
def test_the_title_of_a_save(argument: str, title: str) -> None:
    assert save_title(argument) == title


@pytest.mark.parametrize(
    ("argument", "told"),
    [
        ("", "#faq: the one action is save"),
        ("save", "needs the entry's title"),
        ('save ""', "needs the entry's title"),
        ("save \u200b\u202e", "needs the entry's title"),  # format characters only
        ('delete "x"', '#faq delete "x": the one action is save'),
        ("save " + "x" * (TITLE_CHARS + 1), f"at most {TITLE_CHARS}"),
    ],
)
def test_a_save_without_a_usable_title_is_refused(argument: str, told: str) -> None:
    with pytest.raises(DraftRefused, match=None) as refused:
        save_title(argument)
    assert told in str(refused.value)


def test_a_title_of_the_most_characters_is_taken() -> None:
    assert save_title("save " + "x" * TITLE_CHARS) == "x" * TITLE_CHARS


def test_the_answer_must_be_there_and_not_too_long() -> None:
    assert checked_answer("\n  Use the link.  \n") == "Use the link."
    with pytest.raises(DraftRefused, match="no answer of its own"):
        checked_answer(" \n ")
    assert checked_answer("x" * ANSWER_CHARS) == "x" * ANSWER_CHARS
    with pytest.raises(DraftRefused, match=f"at most {ANSWER_CHARS}"):
        checked_answer("x" * (ANSWER_CHARS + 1))


def test_keywords_are_readable_content_words_subject_first() -> None:
    keywords = question_keywords(
        "Re: Fwd: Carta bloccata",
        "Buongiorno, la mia carta è bloccata dopo tre tentativi del PIN. "
        "Perché la carta non funziona più? Città: Milano. Grazie, Mario Rossi",
        ["Mario Rossi", "mario.rossi"],
    )
    # "carta" twice in the text and twice for the subject; accents kept; no greeting,
    # stop word, reply prefix, number or the customer's own name
    assert keywords[:2] == ("carta", "bloccata")
    assert {"tentativi", "pin", "città"} <= set(keywords) and "perché" not in keywords
    assert {"re", "fwd", "buongiorno", "grazie", "mario", "rossi", "tre", "la"}.isdisjoint(keywords)
    assert len(keywords) == len(set(keywords)) <= 8


def test_keywords_are_at_most_the_limit_and_fold_alike_words_into_one() -> None:
    text = " ".join(f"word{n}" for n in range(3)) + " alpha beta gamma delta epsilon zeta eta"
    assert len(question_keywords("Theta iota kappa", text)) == 8
    assert question_keywords("Café", "cafe CAFÉ café") == ("café",)
    assert question_keywords("", "") == ()


def test_the_language_is_the_first_two_letter_code() -> None:
    assert draft_language(None, "it", "en") == "it"
    assert draft_language("", "zh-Hans", "fr") == "fr"
    assert draft_language(None, "../", "e\n") == "en"


@pytest.mark.parametrize(
    ("title", "stem"),
    [
        ("How do I reset my password?", "how-do-i-reset-my-password"),
        ("Où est ma commande ?", "ou-est-ma-commande"),
        ("../../etc/passwd", "etc-passwd"),
        ("C:\\Windows\\system32", "c-windows-system32"),
        ("...", "ticket-7"),
        ("密码", "ticket-7"),
        ("a" * 70, "a" * 60),
        ("word " * 20, "word-word-word-word-word-word-word-word-word-word-word-word"),
    ],
)
def test_the_file_name_stem(title: str, stem: str) -> None:
    assert slug(title, "ticket-7") == stem


def test_file_names_never_repeat() -> None:
    assert list(islice(file_names("reset", "it"), 3)) == [
        "reset-it.md",
        "reset-2-it.md",
        "reset-3-it.md",
    ]


def test_the_file_reads_back_as_the_draft() -> None:
    text = draft_text(DRAFT)

    assert text == (
        "---\n"
        'title: "I forgot my password"\n'
        "keywords: [password, forgot]\n"
        "language: en\n"
        "status: draft\n"
        "ticket: 1042\n"
        "saved: 2026-11-23\n"
        "---\n"
        "Use the link on the sign-in page.\n"
    )
    entry = parse_entry("x.md", text)
    assert (entry.title, entry.keywords, entry.language, entry.body) == (
        DRAFT.title,
        DRAFT.keywords,
        "en",
        DRAFT.answer,
    )
    assert (entry.status, entry.ticket, entry.saved) == ("draft", 1042, date(2026, 11, 23))


@pytest.mark.parametrize(
    "title",
    [
        'x"\n---\nstatus: live',
        "x\r\n---\r\nstatus: live\r\n",
        "x\u2028---\u2029status: live",
        "x\x1c---\x1dstatus: live\x1e",
        "x\x85---\x0bstatus: live\x0c",
        '"\n---\nstatus: live\n---\nAnswer"',
    ],
)
def test_no_title_breaks_out_of_its_line(title: str) -> None:
    text = draft_text(Draft(title, (), "en", 1, date(2026, 1, 1), "The answer."))

    front, _, body = text.removeprefix("---\n").partition("\n---\n")
    assert len(front.splitlines()) == 6 and body == "The answer.\n"
    entry = parse_entry("x.md", text)
    assert entry.status == "draft" and entry.body == "The answer."
    assert "\n" not in entry.title and "---" in entry.title
