"""A message's header block mended where real clients break its folding.

Some gateways wrap a long header (a base64 tracker such as X-Brightmail-Tracker, a long
subject) without the leading whitespace that marks a continuation line. A parser that
follows RFC 5322 then takes that line for the start of the body, and every field after it
(From, Subject, Content-Type) is lost. Inside the header block, a line that neither names a
field nor starts with whitespace can only be such a continuation when fields still follow
it; it is indented, as its sender meant. A line followed by no field is left alone: that is
a body the sender started without the blank line, and the parser reads it so. A field
written in RFC 5322's obsolete syntax, with spaces before its colon ("Subject  : Hi"),
which the parser would not read as a field at all, loses those spaces.
"""

from __future__ import annotations

import re

# A field name (printable ASCII but ":") and its colon; possessive, one pass per line.
_FIELD_RE = re.compile(rb"[!-9;-~]++[ \t]*+:")
_BLANK_LINE_RE = re.compile(rb"\n\r?\n")
MAX_HEADER_BYTES = 1 << 20  # a header block beyond this is left as it is


def repair_folding(raw: bytes) -> tuple[bytes, int]:
    """(`raw` with the broken continuation lines of its header block indented and the
    obsolete space before a field's colon removed, how many lines were mended)."""
    end = _BLANK_LINE_RE.search(raw, 0, MAX_HEADER_BYTES)
    head_end = end.start() + 1 if end else min(len(raw), MAX_HEADER_BYTES)
    lines = raw[:head_end].splitlines(keepends=True)
    kinds = [_kind(line, first=number == 0) for number, line in enumerate(lines)]
    last_field = max((n for n, kind in enumerate(kinds) if kind.endswith("field")), default=-1)
    mended = 0
    for number, kind in enumerate(kinds):
        if kind == "broken" and number < last_field:
            lines[number] = b" " + lines[number]
        elif kind == "spaced field":  # RFC 5322 obs-optional: "Subject  : Hello"
            name, _, value = lines[number].partition(b":")
            lines[number] = name.rstrip(b" \t") + b":" + value
        else:
            continue
        mended += 1
    if not mended:
        return raw, 0
    return b"".join(lines) + raw[head_end:], mended


def _kind(line: bytes, *, first: bool) -> str:
    if line[:1] in (b" ", b"\t"):
        return "continuation"
    field = _FIELD_RE.match(line)
    if field:  # Python's parser reads no field with a space before its colon
        return "spaced field" if field.group()[-2:-1] in (b" ", b"\t") else "field"
    if first and line.startswith(b"From "):  # mbox's own line
        return "field"
    return "broken" if line.strip() else "blank"
