"""The pure side of full-text search: what a query's words are, and the snippet of a hit.

A user's words are data, never query syntax: they are cut into runs of letters and digits
(so `"`, `*`, `-`, `:` and parentheses are separators) and each is quoted for FTS5, so
`NEAR` or `OR` is a word like any other. Everything here is linear in its input.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

MAX_QUERY_CHARS = 200  # of the query as given; the rest is not read
MAX_WORDS = 20
SNIPPET_CHARS = 160  # of text around the first match
MARK_OPEN, MARK_CLOSE = "[", "]"

_WORD = re.compile(r"[^\W_]+")
_SPACE = re.compile(r"\s+")


def search_words(query: str) -> tuple[str, ...]:
    """The words to search for, at most MAX_WORDS of the first MAX_QUERY_CHARS characters,
    each at most once; empty when the query has no letter or digit."""
    words: list[str] = []
    for match in _WORD.finditer(query[:MAX_QUERY_CHARS]):
        word = match.group()
        if word.casefold() not in (w.casefold() for w in words):
            words.append(word)
        if len(words) == MAX_WORDS:
            break
    return tuple(words)


def fts5_match(words: Sequence[str]) -> str:
    """An FTS5 MATCH expression that finds every word (AND): each a quoted string, its
    double quotes doubled (the words have none, but a quoted string is only safe so)."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


def fold(value: str) -> str:
    """Lower case without diacritics, one character for each of `value`'s: "Perché" is
    "perche"; positions in the folded text are positions in the original."""
    return "".join(_fold_char(char) for char in value)


def _fold_char(char: str) -> str:
    base = unicodedata.normalize("NFD", char)[0].casefold()
    return base if len(base) == 1 else char.lower()[:1] or char


def snippet(texts: Sequence[str], words: Sequence[str], width: int = SNIPPET_CHARS) -> str:
    """About `width` characters of the first text that holds a word, around its first
    match, each match in the window marked [like this]; else the start of the first
    non-empty text. Whitespace runs become one space."""
    folded_words = [fold(word) for word in words if word]
    for value in texts:
        flat = _SPACE.sub(" ", value[: width * 200]).strip()
        spans = _matches(fold(flat), folded_words)
        if spans:
            return _window(flat, spans, width)
    for value in texts:
        flat = _SPACE.sub(" ", value[: width * 2]).strip()
        if flat:
            return flat[:width] + ("…" if len(flat) > width else "")
    return ""


def _matches(folded: str, words: Sequence[str]) -> list[tuple[int, int]]:
    """Where each word starts a word of the text (a prefix, so a stemmed match shows too),
    in text order, not overlapping."""
    spans: list[tuple[int, int]] = []
    for word in words:
        stem = word if len(word) <= 4 else word[: max(4, len(word) - 2)]
        start = folded.find(stem)
        while start != -1:
            if start == 0 or not folded[start - 1].isalnum():
                end = start + len(stem)
                while end < len(folded) and folded[end].isalnum():
                    end += 1
                spans.append((start, end))
                break
            start = folded.find(stem, start + 1)
    spans.sort()
    kept: list[tuple[int, int]] = []
    for span in spans:
        if not kept or span[0] >= kept[-1][1]:
            kept.append(span)
    return kept


def _window(flat: str, spans: list[tuple[int, int]], width: int) -> str:
    first = spans[0][0]
    start = max(0, first - width // 3)
    if start:
        space = flat.find(" ", start, first)
        start = space + 1 if space != -1 else start
    end = min(len(flat), start + width)
    pieces, at = [], start
    for begin, stop in spans:
        if begin < at or stop > end:
            continue
        pieces += [flat[at:begin], MARK_OPEN, flat[begin:stop], MARK_CLOSE]
        at = stop
    pieces.append(flat[at:end])
    return ("…" if start else "") + "".join(pieces) + ("…" if end < len(flat) else "")
