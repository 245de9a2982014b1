"""Mending a header block the standard parser would cut short. Pure functions.

The parser ends the headers at the first line that is neither `Name: value` nor a folded
continuation, and reads everything after it, From and Subject included, as body. Real mail
has such lines: a long header folded without leading whitespace, a stray word before a
field (`quite Delivered-To: …`), the obsolete spaces before the colon (`From  : …`, RFC
5322 section 4.5). Mended, a line without a field name is the continuation of the field
above it, and a name loses the spaces before its colon; each repair is a defect.

Fields below the first mended line were body to the receiving MTA, which therefore never
checked them: an `Authentication-Results` there is not read, so a sender cannot slip one
past the MTA that removes forged ones from the header block.
"""

from __future__ import annotations

import re
from email.errors import MissingHeaderBodySeparatorDefect
from email.message import Message

# A field name (printable ASCII but ":"), spaces, a colon. Possessive: linear on any line.
_FIELD = re.compile(rb"([!-9;-~]*+)([ \t]*+):")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_OBSOLETE_FROM = re.compile(r"From[ \t]*+:")
_TRUSTED_ONLY = frozenset({b"authentication-results"})


def header_block_broken(msg: Message) -> bool:
    """Did the parser stop reading headers early (a line it could not read as a field, or
    an obsolete `From  :` first line taken for an mbox separator)?"""
    unixfrom = msg.get_unixfrom() or ""
    return bool(_OBSOLETE_FROM.match(unixfrom)) or any(
        isinstance(defect, MissingHeaderBodySeparatorDefect) for defect in msg.defects
    )


def mend_header_block(raw: bytes) -> tuple[bytes, tuple[str, ...]]:
    """(raw with its header block mended, a defect per kind of repair); `raw` and () when
    there is nothing to mend.

    Only a block that opens with a field, has another and ends with a blank line is
    mended, and only a line with fields after it: text after the last field may be a body
    that no blank line sets apart, and stays the parser's to read.
    """
    end = _BLANK_LINE.search(raw)
    if end is None:
        return raw, ()
    lines = raw[: end.start()].split(b"\n")
    fields = [_field(line, index) for index, line in enumerate(lines)]
    opens = 1 if fields[0] is _MBOX else 0
    named = [index for index, field in enumerate(fields) if isinstance(field, re.Match)]
    if len(named) < 2 or named[0] != opens:
        return raw, ()  # not a header block: text, or one "Word :" line of it
    last = named[-1]
    out: list[bytes] = []
    notes: dict[str, None] = {}
    mended = skipping = False
    for index, (line, field) in enumerate(zip(lines, fields, strict=True)):
        if field is _CONTINUATION or field is _MBOX or (field is None and index > last):
            if not skipping:
                out.append(line)
            continue
        skipping = False
        if field is None:
            notes[
                "a header line without a field name was read as the continuation of the "
                "field above it (broken folding)"
            ] = None
            out.append(b" " + line)
            mended = True
            continue
        assert isinstance(field, re.Match)
        name, spaces = field.group(1), field.group(2)
        if mended and name.lower() in _TRUSTED_ONLY:
            notes[
                f"{name.decode('ascii')} below a broken header line not read: the receiving "
                "server saw it as body and did not check it"
            ] = None
            skipping = True
            continue
        if spaces and name:
            notes["spaces before a header field's colon removed (obsolete syntax)"] = None
            line = name + b":" + line[field.end() :]
            mended = True
        out.append(line)
    if not notes:
        return raw, ()
    return b"\n".join(out) + raw[end.start() :], tuple(notes)


_CONTINUATION, _MBOX = object(), object()


def _field(line: bytes, index: int) -> re.Match[bytes] | object | None:
    """The field a header line starts, _CONTINUATION, _MBOX (an mbox separator first) or
    None for a line that is none of them."""
    if line[:1] in (b" ", b"\t"):
        return _CONTINUATION
    field = _FIELD.match(line)
    if field is None and index == 0 and line.startswith(b"From "):
        return _MBOX
    return field
