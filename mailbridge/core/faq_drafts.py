"""A draft FAQ entry made from a staff answer (`#faq save "Title"`). Pure: reads the
command's argument, the customer's question and the answer; writes the entry's text.

Everything here may come from mail, so nothing of it can shape the file: the title is one
line of at most TITLE_CHARS characters, quoted; the keywords are words of letters only;
the language is two letters; the status line is written here, before any of it, and
`status: draft` is what core/faq.py reads back. The file name is a slug of ASCII letters,
digits and hyphens, so no title names a path.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from mailbridge.core.faq import STOP_WORDS
from mailbridge.core.folding import strip_accents
from mailbridge.core.parse import normalize_subject
from mailbridge.core.safe_text import clean_header_text

TITLE_CHARS = 120
ANSWER_CHARS = 10_000  # an FAQ answer is a few paragraphs; longer is a mistake
QUESTION_CHARS = 1000  # of the customer's own words read for keywords, as for suggestions
KEYWORDS = 8
SLUG_CHARS = 60
SAVE = "save"
EXAMPLE = '#faq save "How do I reset my password?"'

# Quotes a mail client may put around the title: straight, typographic, guillemets.
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u201e": "\u201c", "\u00ab": "\u00bb"}
_WORD_RE = re.compile(r"[^\W\d_]{3,}")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_LANGUAGE_RE = re.compile(r"[a-z]{2}")


class DraftRefused(ValueError):
    """Why no draft is saved, in words for the staff member who asked."""


@dataclass(frozen=True, slots=True)
class Draft:
    """A draft entry: what the front matter says, and the answer."""

    title: str
    keywords: tuple[str, ...]
    language: str
    ticket: int
    saved: date
    answer: str


def save_title(argument: str) -> str:
    """The title `#faq save "Title"` gives (quotes optional); DraftRefused says what is
    wrong with the argument."""
    action, *rest = argument.split(None, 1) or [""]
    if action.lower() != SAVE:
        said = f"#faq {argument.strip()}".strip()
        raise DraftRefused(f"{said}: the one action is save, like {EXAMPLE}")
    title = clean_header_text(_unquoted(rest[0].strip() if rest else ""))
    if not title:
        raise DraftRefused(f"#faq save needs the entry's title, like {EXAMPLE}")
    if len(title) > TITLE_CHARS:
        raise DraftRefused(
            f"#faq save: the title has {len(title)} characters, at most {TITLE_CHARS}: "
            "write the question on that line and the answer below it"
        )
    return title


def _unquoted(text: str) -> str:
    close = _QUOTES.get(text[:1])
    if close is not None and len(text) >= 2 and text.endswith(close):
        return text[1:-1]
    return text


def checked_answer(text: str) -> str:
    """The answer as the draft keeps it; DraftRefused when there is none or too much."""
    answer = text.strip()
    if not answer:
        raise DraftRefused(
            "#faq save: the reply has no answer of its own to save: write it below the commands"
        )
    if len(answer) > ANSWER_CHARS:
        raise DraftRefused(
            f"#faq save: the answer has {len(answer)} characters, at most {ANSWER_CHARS} "
            "for an FAQ entry"
        )
    return answer


def question_keywords(
    subject: str, text: str, leave_out: Iterable[str] = (), limit: int = KEYWORDS
) -> tuple[str, ...]:
    """Content words of a customer's question, as people read them (lower case, accents
    kept, not stemmed): no stop words, none of `leave_out` (the customer's own name), each
    once. Words of the subject count twice; the most frequent come first, then the first
    written."""
    skipped = {_fold(word) for name in leave_out for word in _WORD_RE.findall(name)}
    counts: Counter[str] = Counter()
    spelled: dict[str, str] = {}
    for weight, words in ((2, normalize_subject(subject)), (1, text[:QUESTION_CHARS])):
        for word in _WORD_RE.findall(words.lower()):
            folded = _fold(word)
            if folded in STOP_WORDS or folded in skipped:
                continue
            spelled.setdefault(folded, word)
            counts[folded] += weight
    order = {folded: n for n, folded in enumerate(spelled)}
    ranked = sorted(spelled, key=lambda folded: (-counts[folded], order[folded]))
    return tuple(spelled[folded] for folded in ranked[:limit])


def _fold(word: str) -> str:
    return strip_accents(word.lower())


def draft_language(*candidates: str | None) -> str:
    """The first candidate that is a two-letter code (the ticket's, the detected one, the
    mailbox's); "en" when none is."""
    return next((c for c in candidates if c and _LANGUAGE_RE.fullmatch(c)), "en")


def slug(title: str, fallback: str) -> str:
    """The title as a file name stem: ASCII letters and digits joined by hyphens, at most
    SLUG_CHARS, cut at a hyphen; `fallback` (itself a slug) when nothing of it is left."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    stem = _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")
    if len(stem) > SLUG_CHARS:
        cut = stem[:SLUG_CHARS]
        stem = cut.rsplit("-", 1)[0] if "-" in cut else cut
    return stem or fallback


def file_names(stem: str, language: str) -> Iterator[str]:
    """`stem-xx.md`, then `stem-2-xx.md`, `stem-3-xx.md`, …: never one taken already."""
    yield f"{stem}-{language}.md"
    number = 2
    while True:
        yield f"{stem}-{number}-{language}.md"
        number += 1


def draft_text(draft: Draft) -> str:
    """The entry's file: front matter core/faq.py reads back as this draft, then the
    answer. The title is the only free text in the front matter, on one line, quoted."""
    keywords = ", ".join(draft.keywords)
    return (
        "---\n"
        f'title: "{clean_header_text(draft.title)[:TITLE_CHARS]}"\n'
        f"keywords: [{keywords}]\n"
        f"language: {draft_language(draft.language)}\n"
        "status: draft\n"
        f"ticket: {int(draft.ticket)}\n"
        f"saved: {draft.saved.isoformat()}\n"
        "---\n"
        f"{draft.answer.strip()}\n"
    )
