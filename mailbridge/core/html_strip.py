"""The visible text of HTML by removing its tags: one linear pass, no tree and no regex.

The HTML converter reads a tree, and libxml2 stops building it at a fixed depth: text nested
deeper (10,000 <div>s are easy to send) is silently lost. This reading has no depth at all,
so it is what the text falls back to when the converter returns clearly less.
"""

from __future__ import annotations

import html

# Tags whose start or end is a line break in what a reader sees.
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "footer",
    "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol",
    "p", "pre", "section", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
})  # fmt: skip
_HIDDEN = ("script", "style", "head", "title", "template")  # their text is not shown
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_NAME_END = " \t\r\n/>"


def strip_tags(markup: str) -> str:
    """The text between the tags, one line per block, entities decoded."""
    stripper = _Stripper(markup)
    position, size = 0, len(markup)
    while position < size:
        opening = markup.find("<", position)
        if opening < 0:
            stripper.pieces.append(markup[position:])
            break
        stripper.pieces.append(markup[position:opening])
        position = stripper.after_tag(opening)
    return _tidy(html.unescape("".join(stripper.pieces)))


def visible_length(text: str) -> int:
    """Characters a reader sees: everything but white space."""
    return len(text) - sum(text.count(space) for space in " \t\r\n\xa0")


class _Stripper:
    def __init__(self, markup: str) -> None:
        self.markup = markup
        # Lower-cased letter for letter, so positions in it are positions in markup.
        self.lower = markup.translate(_ASCII_LOWER)
        self.pieces: list[str] = []
        # Hidden elements found never to close: searching again would make this quadratic.
        self.unclosed: set[str] = set()

    def after_tag(self, opening: int) -> int:
        """Where reading goes on after the tag (or comment) at `opening`."""
        markup, lower = self.markup, self.lower
        if lower.startswith("<!--", opening):
            end = markup.find("-->", opening + 4)
            return len(markup) if end < 0 else end + 3
        closing = markup.find(">", opening + 1)
        if closing < 0:
            return len(markup)  # an unterminated tag: the rest is inside it
        name = _tag_name(lower, opening + 1, closing)
        if name in _BLOCKS:
            self.pieces.append("\n")
        if name in _HIDDEN and lower[opening + 1] != "/" and name not in self.unclosed:
            end = lower.find(f"</{name}", closing + 1)
            after = markup.find(">", end) if end >= 0 else -1
            if after >= 0:
                return after + 1
            self.unclosed.add(name)  # shown, as a missing </head> would hide the whole body
        return closing + 1


def _tag_name(lower: str, start: int, end: int) -> str:
    if start < end and lower[start] == "/":
        start += 1
    stop = start
    while stop < end and lower[stop] not in _NAME_END:
        stop += 1
    return lower[start:stop]


def _tidy(text: str) -> str:
    """Runs of white space as one space, no space at a line's ends, no blank lines."""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)
