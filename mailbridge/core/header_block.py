"""A message's header block mended where real clients break its folding.

Some gateways wrap a long header (a base64 tracker such as X-Brightmail-Tracker, a long
subject) without the leading whitespace that marks a continuation line. A parser that
follows RFC 5322 then takes that line for the start of the body, and every field after it
(From, Subject, Content-Type) is lost. Inside the header block, a line that neither names a
field nor starts with whitespace can only be such a continuation when fields still follow
it; it is indented, as its sender meant. A line followed by no field is left alone: that is
a body the sender started without the blank line, and the parser reads it so.
"""

from __future__ import annotations

import re

# A field name (printable ASCII but ":") and its colon; possessive, one pass per line.
_FIELD_RE = re.compile(rb"[!-9;-~]++[ \t]*+:")
_BLANK_LINE_RE = re.compile(rb"\n\r?\n")
MAX_HEADER_BYTES = 1 << 20  # a header block beyond this is left as it is


def repair_folding(raw: bytes) -> tuple[bytes, int]:
    """(`raw` with the broken continuation lines of its header block indented, how many)."""
    end = _BLANK_LINE_RE.search(raw, 0, MAX_HEADER_BYTES)
    head_end = end.start() + 1 if end else min(len(raw), MAX_HEADER_BYTES)
    lines = raw[:head_end].splitlines(keepends=True)
    kinds = [_kind(line, first=number == 0) for number, line in enumerate(lines)]
    last_field = max((n for n, kind in enumerate(kinds) if kind == "field"), default=-1)
    broken = [n for n, kind in enumerate(kinds[:last_field]) if kind == "broken"]
    if not broken:
        return raw, 0
    for number in broken:
        lines[number] = b" " + lines[number]
    return b"".join(lines) + raw[head_end:], len(broken)


def _kind(line: bytes, *, first: bool) -> str:
    if line[:1] in (b" ", b"\t"):
        return "continuation"
    if _FIELD_RE.match(line) or (first and line.startswith(b"From ")):  # mbox's own line
        return "field"
    return "broken" if line.strip() else "blank"
