"""TNEF bytes made safe for tnefparse: every count it would loop over is checked first.

tnefparse trusts the counts a winmail.dat states. Forty-four bytes claiming 2^32-1 MAPI
properties keep it looping (and logging a line per property) for hours; a multi-valued
property claiming 2^32 values fills memory. Here the attribute stream is walked as tnefparse
walks it, and each property list is cut to the properties that are really there, within the
counts of ParseLimits; the stream tnefparse then reads states only those. What was cut is
returned as defects. A stream within every count is returned as it was, byte for byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from mailbridge.core.message import ParseLimits

_ATTRIBUTE = struct.Struct("<BHHI")  # level, name, type, length; then data and a checksum
_U16, _U32 = struct.Struct("<H"), struct.Struct("<I")
_STREAM_HEAD = 6  # signature and key
_MIN_ATTRIBUTE = 12  # tnefparse reads an attribute only when more than this is left
_LEVEL_ATTACHMENT = 2
_RENDERING = 0x9002  # attAttachRendData: starts each attached file
_MESSAGE_PROPS, _RECIPIENTS, _ATTACHMENT_PROPS = 0x9003, 0x9004, 0x9005
_NAMED = 0x8000  # property names from here on carry a GUID and a name or id
_MULTI = 0x1000
_FIXED = {0x0002: 2, 0x000B: 2, 0x0003: 4, 0x0004: 4, 0x000A: 4, 0x0005: 8, 0x0006: 8,
          0x0007: 8, 0x0014: 8, 0x0040: 8, 0x0048: 16}  # fmt: skip
_SHORT = (0x0002, 0x000B)  # an odd number of these is padded to four bytes
_COUNTED = (0x0000, 0x000D, 0x001E, 0x001F, 0x0102)  # a count, then sized values
_ATTACH_DATA_OBJ, _OBJECT, _BINARY = 0x3701, 0x000D, 0x0102
_EMBEDDED = b"\x07\x03\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"
# A stream with no attributes. Its key ends in no zero byte: tnefparse strips trailing
# zeros from an attached file's data before it reads an embedded message.
_EMPTY_STREAM = b"\x78\x9f\x3e\x22\x01\x01"


_MAX_CUTS = 5  # defects listed; a stream cut in a thousand places says so once


class _Incomplete(Exception):
    """The bytes end inside a property, it has a type tnefparse cannot read, or the count
    of property values is reached."""


@dataclass
class _Counts:
    """Shared by a stream and the messages embedded in it."""

    limits: ParseLimits
    attributes: int = 0
    attachments: int = 0
    properties: int = 0
    cuts: list[str] = field(default_factory=list)
    more_cuts: int = 0

    def cut(self, what: str) -> None:
        if len(self.cuts) < _MAX_CUTS:
            self.cuts.append(what)
        else:
            self.more_cuts += 1

    @property
    def over(self) -> bool:
        return self.properties >= self.limits.max_tnef_properties

    def defects(self) -> list[str]:
        more = [f"TNEF cut in {self.more_cuts} more places"] if self.more_cuts else []
        return self.cuts + more


def bounded_tnef(data: bytes, limits: ParseLimits) -> tuple[bytes, list[str]]:
    """(TNEF bytes whose counts tnefparse can follow safely, what was cut)."""
    counts = _Counts(limits)
    return _stream(data, counts, 0), counts.defects()


def _stream(data: bytes, counts: _Counts, depth: int) -> bytes:
    out = [data[:_STREAM_HEAD]]
    offset = _STREAM_HEAD
    while offset + _MIN_ATTRIBUTE < len(data):
        level, name, kind, length = _ATTRIBUTE.unpack_from(data, offset)
        size = min(len(data) - offset, length + 11)  # as tnefparse: the rest, at most
        if not _count_attribute(counts, name):
            break
        body = data[offset + 9 : offset + size - 2]
        bounded = _bounded_attribute(level, name, body, counts, depth)
        if bounded is body:
            out.append(data[offset : offset + size])
        else:
            out.append(
                _ATTRIBUTE.pack(level, name, kind, len(bounded))
                + bounded
                + _U16.pack(sum(bounded) & 0xFFFF)
            )
        offset += size
    else:
        out.append(data[offset:])
    bounded = b"".join(out)
    return data if bounded == data else bounded


def _count_attribute(counts: _Counts, name: int) -> bool:
    limits = counts.limits
    if counts.attributes >= limits.max_tnef_attributes:
        counts.cut(
            f"TNEF has more than {limits.max_tnef_attributes} attributes: the rest were not read"
        )
        return False
    if name == _RENDERING and counts.attachments >= limits.max_tnef_attachments:
        counts.cut(
            f"TNEF has more than {limits.max_tnef_attachments} attachments: the rest were not read"
        )
        return False
    counts.attributes += 1
    counts.attachments += name == _RENDERING
    return True


def _bounded_attribute(level: int, name: int, body: bytes, counts: _Counts, depth: int) -> bytes:
    """The attribute's data with its counts checked; `body` itself when nothing changed."""
    if level == _LEVEL_ATTACHMENT:
        return _property_list(body, counts, depth) if name == _ATTACHMENT_PROPS else body
    if name == _MESSAGE_PROPS:
        return _property_list(body, counts, depth)
    if name == _RECIPIENTS:
        return _recipients(body, counts, depth)
    return body


def _recipients(body: bytes, counts: _Counts, depth: int) -> bytes:
    """A row count, then one property list per row."""
    if len(body) < 4:
        return body
    (claimed,), offset = _U32.unpack_from(body), 4
    rows: list[bytes] = []
    while len(rows) < claimed:  # each row takes four bytes at least: this ends with them
        try:
            end, kept, whole = _properties(body, offset, counts, depth)
        except _Incomplete:
            break
        rows.append(kept)
        offset = end
        if not whole:
            break
    if len(rows) == claimed and body[4:offset] == b"".join(rows):
        return body
    if len(rows) < claimed:
        counts.cut(
            f"TNEF recipient table claims {claimed} rows, holds {len(rows)}: the rest were not read"
        )
    return _U32.pack(len(rows)) + b"".join(rows)


def _property_list(body: bytes, counts: _Counts, depth: int) -> bytes:
    if len(body) < 4:
        return body  # tnefparse gives up on it at once
    end, kept, whole = _properties(body, 0, counts, depth)
    if not whole:
        return kept
    return body if kept == body[:end] else kept + body[end:]


def _properties(data: bytes, offset: int, counts: _Counts, depth: int) -> tuple[int, bytes, bool]:
    """(where the list ends, the list as tnefparse may read it, whether it is whole): a
    count, then properties, cut at the first one that is incomplete or over the counts."""
    claimed = _u32(data, offset)
    position, pieces = offset + 4, list[bytes]()
    while len(pieces) < claimed:  # each property takes bytes: this ends with them
        try:
            position, piece = _property(data, position, counts, depth)
        except _Incomplete:
            counts.cut(
                f"TNEF has more than {counts.limits.max_tnef_properties} property "
                "values: the rest were not read"
                if counts.over
                else f"TNEF property list claims {claimed} properties, holds "
                f"{len(pieces)}: the rest were not read"
            )
            return position, _U32.pack(len(pieces)) + b"".join(pieces), False
        pieces.append(piece)
    return position, _U32.pack(claimed) + b"".join(pieces), True


def _property(data: bytes, start: int, counts: _Counts, depth: int) -> tuple[int, bytes]:
    """(where the property ends, its bytes): read as tnefparse's decode_mapi reads it."""
    kind, name = _u16(data, start), _u16(data, start + 2)
    position = start + 4
    if name >= _NAMED:
        position += 16  # the GUID
        id_kind = _u32(data, position)
        position += 8 if id_kind == 0 else 8 + _padded(_u32(data, position + 4))
    values = None
    if kind & _MULTI:
        kind ^= _MULTI
        values = _u32(data, position)
        position += 4
    value_start = position
    for _ in range(values or 1):  # each value takes bytes, or counts: this ends
        position = _value(data, position, kind, multi=values is not None, counts=counts)
    if (values or 1) % 2 and kind in _SHORT:
        return position + 2, data[start : position + 2]  # the padding may lie past the end
    if name == _ATTACH_DATA_OBJ and kind in (_OBJECT, _BINARY) and values is None:
        value = _embedded(data, value_start, position, counts, depth)
        return position, data[start:value_start] + value
    return position, data[start:position]


def _value(data: bytes, position: int, kind: int, *, multi: bool, counts: _Counts) -> int:
    """Where one value (or, not multi-valued, one counted run of values) ends."""
    if kind in _FIXED:
        _count_value(counts)
        end = position + _FIXED[kind]
    elif kind in _COUNTED:
        runs = 1 if multi else _u32(data, position)
        end = position if multi else position + 4
        for _ in range(runs):  # each run needs four bytes, so this ends with the data
            _count_value(counts)
            end += 4 + _padded(_u32(data, end))
    else:
        raise _Incomplete  # tnefparse stops at a type it does not know
    if end > len(data):
        raise _Incomplete
    return end


def _count_value(counts: _Counts) -> None:
    if counts.over:
        raise _Incomplete
    counts.properties += 1


def _embedded(data: bytes, start: int, end: int, counts: _Counts, depth: int) -> bytes:
    """An attached file's data, from `start` to `end`. An embedded message, a TNEF stream
    tnefparse reads in turn, is bounded like the outer one (and empty past max_tnef_depth)."""
    runs, length = _u32(data, start), _u32(data, start + 4)
    value = data[start + 8 : end]
    if runs != 1 or not value.startswith(_EMBEDDED):
        return data[start:end]
    inner = value[len(_EMBEDDED) : length]
    if depth + 1 >= counts.limits.max_tnef_depth:
        counts.cut(
            f"TNEF messages embedded deeper than {counts.limits.max_tnef_depth} levels "
            "were not read"
        )
        bounded = _EMPTY_STREAM
    else:
        bounded = _stream(inner, counts, depth + 1)
    if bounded is inner:
        return data[start:end]
    value = _EMBEDDED + bounded
    return _U32.pack(1) + _U32.pack(len(value)) + value + b"\0" * (-len(value) % 4)


def _u16(data: bytes, position: int) -> int:
    if position + 2 > len(data):
        raise _Incomplete
    return int(_U16.unpack_from(data, position)[0])


def _u32(data: bytes, position: int) -> int:
    if position + 4 > len(data):
        raise _Incomplete
    return int(_U32.unpack_from(data, position)[0])


def _padded(length: int) -> int:
    return length + (-length % 4)
