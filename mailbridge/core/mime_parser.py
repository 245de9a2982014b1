"""The standard library's MIME parser (compat32), with its two super-linear steps replaced
(core.mime_tree builds the tree with them).

- Header parameters: `Message.get_param` (charset, name, filename, boundary) splits a value
  at each ";" after counting the quotes before it once more: quadratic in a long
  Content-Type or Content-Disposition. `split_params` makes the same split in one pass.
- Boundaries: RFC 2046 has every line checked against the boundary of each multipart it is
  nested in, one regular expression each, so a deep message cost lines x depth. `_Lines`
  looks the boundaries a line could be up among those open instead.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from email import feedparser, utils
from email.message import Message
from typing import Any

_PARAM_MARKS = re.compile(r'[;"]')


def split_params(value: str) -> list[str]:
    """`value` cut at each ";" outside quotes, as the email package's `_parseparam` does it.

    A ";" is inside quotes when an odd number of quotes not preceded by a backslash lie
    between it and the start of its parameter; each piece is stripped, and "name = value"
    becomes "name=value" with the name lower-cased.
    """
    pieces: list[str] = []
    start, quoted = 0, False
    for mark in _PARAM_MARKS.finditer(value):
        at = mark.start()
        if value[at] == '"':
            quoted ^= at == 0 or value[at - 1] != "\\"
        elif not quoted:
            pieces.append(_param(value[start:at]))
            start = at + 1
    pieces.append(_param(value[start:]))
    return pieces


def _param(piece: str) -> str:
    name, equals, value = piece.partition("=")
    return (f"{name.strip().lower()}={value.strip()}" if equals else piece).strip()


class LinearMessage(Message):
    """A compat32 message that reads its header parameters in one pass."""

    def _get_params_preserve(self, failobj: Any, header: str) -> Any:
        # The email package's own method (which get_param and get_params call), with
        # split_params in place of its quadratic _parseparam. A NUL means nothing in a
        # parameter and makes codecs raise ValueError (not LookupError) on a charset name,
        # which the email package's get_payload lets through: it is dropped here.
        missing = object()
        value = self.get(header, missing)
        if value is missing:
            return failobj
        params = []
        for piece in split_params(str(value).replace("\x00", "")):
            name, equals, param = piece.partition("=")
            params.append((name.strip(), param.strip()) if equals else (piece.strip(), ""))
        return utils.decode_params(params)


_Check = Callable[[str], object]
_BLANK = r"\r\n|\r|\n"  # the feedparser's check that ends a delivery-status block
_BOUNDARY = ("(?P<sep>", r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$")
_ESCAPED = re.compile(r"\\(.)", re.S)


def _pattern(check: _Check) -> str | None:
    pattern = getattr(getattr(check, "__self__", None), "pattern", None)
    return pattern if isinstance(pattern, str) else None


def _boundary(pattern: str) -> str | None:
    """The boundary a check of the feedparser looks for, or None for another kind.

    The feedparser matches `"--" + boundary`, then "--" at the end of the multipart, spaces
    or tabs and a line break. The boundary is read back from that expression; any other
    (another Python's, say) stays a check to run on every line.
    """
    head, tail = _BOUNDARY
    if not (pattern.startswith(head) and pattern.endswith(tail)):
        return None
    escaped = pattern[len(head) : len(pattern) - len(tail)]
    separator = _ESCAPED.sub(r"\1", escaped)
    if re.escape(separator) != escaped or not separator.startswith("--"):
        return None
    # The lookup below takes trailing spaces and tabs for the line's; get_boundary strips them.
    return None if separator.endswith((" ", "\t")) else separator[2:]


class Lines(feedparser.BufferedSubFile):  # type: ignore[name-defined,misc]  # no stub
    """The feedparser's line buffer, finding the end of a part by looking a line up.

    The feedparser pushes a check for each open multipart (its boundary) and for each
    delivery-status block (a blank line), and a line that passes any of them ends the part
    being read. A line can only be the boundaries its own text spells, so those are looked
    up in a count of the open ones; checks of any other kind are run on every line.
    """

    def __init__(self) -> None:
        super().__init__()
        self._checks: list[tuple[_Check, str | None, bool]] = []  # check, boundary, blank
        self._boundaries: Counter[str] = Counter()
        self._blank_checks = 0
        self._other_checks = 0

    def push_eof_matcher(self, pred: _Check) -> None:
        pattern = _pattern(pred)
        boundary = None if pattern is None else _boundary(pattern)
        self._checks.append((pred, boundary, pattern == _BLANK))
        self._count(boundary, pattern == _BLANK, 1)

    def pop_eof_matcher(self) -> _Check:
        pred, boundary, blank = self._checks.pop()
        self._count(boundary, blank, -1)
        return pred

    def _count(self, boundary: str | None, blank: bool, step: int) -> None:
        if boundary is not None:
            self._boundaries[boundary] += step
        elif blank:
            self._blank_checks += step
        else:
            self._other_checks += step

    def readline(self) -> Any:
        line = super().readline()
        if self._checks and isinstance(line, str) and line and self._ends_part(line):
            self.unreadline(line)
            return ""
        return line

    def _ends_part(self, line: str) -> bool:
        if self._other_checks:
            return any(check(line) for check, _, _ in reversed(self._checks))
        if line[0] in "\r\n":
            return self._blank_checks > 0
        if not line.startswith("--"):
            return False
        # "--" + boundary, "--" if it closes the multipart, spaces or tabs, a line break
        spelled = line.rstrip("\r\n").rstrip(" \t")[2:]
        if self._boundaries[spelled] > 0:
            return True
        return spelled.endswith("--") and self._boundaries[spelled[:-2]] > 0
