"""winmail.dat whose counts lie: read up to what is there, within ParseLimits' counts, at
once, with a defect saying what was cut. Honest TNEF passes through untouched."""

from __future__ import annotations

import struct

import pytest

from mailbridge.core.message import ParseLimits
from mailbridge.core.parse import parse_message
from mailbridge.core.tnef import unpack_tnef
from mailbridge.core.tnef_guard import bounded_tnef
from tests.support.tnef import FILES, build_tnef, outlook_mail, tnef_object

pytestmark = pytest.mark.unit

HEAD = struct.pack("<IH", 0x223E9F78, 0x0001)
MESSAGE, ATTACHMENT = 1, 2
PT_SHORT, PT_INT, PT_BINARY = 0x0002, 0x0003, 0x0102
LIMITS = ParseLimits()


def props_bomb() -> bytes:
    """44 bytes: one attMAPIProps claiming 2^32-1 properties, three of them there."""
    props = (
        struct.pack("<I", 0xFFFFFFFF)
        + struct.pack("<HHI", PT_INT, 0x3FDE, 65001) * 2
        + struct.pack("<HHH", PT_SHORT, 0x0017, 1)
        + b"\0"
    )
    return HEAD + tnef_object(MESSAGE, 0x9003, 0x0006, props)


@pytest.mark.timeout(10)
def test_the_44_byte_property_bomb_is_read_at_once() -> None:
    bomb = props_bomb()
    assert len(bomb) == 44
    content = unpack_tnef(bomb)
    assert content.defects == [
        "TNEF property list claims 4294967295 properties, holds 3: the rest were not read"
    ]
    msg = parse_message(outlook_mail(bomb, text="see attached"))
    assert msg.text.strip() == "see attached"
    (kept,) = msg.attachments  # nothing inside could be used: the original stays
    assert (kept.filename, kept.payload) == ("winmail.dat", bomb)
    assert (
        "TNEF property list claims 4294967295 properties, holds 3: the rest were not read"
        in msg.defects
    )


@pytest.mark.timeout(10)
def test_a_multi_valued_property_claiming_four_billion_values_is_cut() -> None:
    props = struct.pack("<I", 1) + struct.pack("<HHI", 0x1000 | PT_SHORT, 0x0017, 0xFFFFFFFF)
    props += b"\1\0" * 10
    data, cuts = bounded_tnef(HEAD + tnef_object(MESSAGE, 0x9003, 0x0006, props), LIMITS)
    assert cuts == ["TNEF property list claims 1 properties, holds 0: the rest were not read"]
    assert unpack_tnef(data).defects == []  # tnefparse reads what is left without a word


@pytest.mark.timeout(10)
def test_a_counted_binary_claiming_four_billion_values_is_cut() -> None:
    props = struct.pack("<I", 1) + struct.pack("<HHI", PT_BINARY, 0x1013, 0xFFFFFFFF)
    props += struct.pack("<I", 4) + b"abcd"
    content = unpack_tnef(HEAD + tnef_object(MESSAGE, 0x9003, 0x0006, props))
    assert content.defects == [
        "TNEF property list claims 1 properties, holds 0: the rest were not read"
    ]


@pytest.mark.timeout(10)
def test_a_recipient_table_claiming_four_billion_rows_is_cut() -> None:
    row = struct.pack("<I", 1) + struct.pack("<HHI", PT_INT, 0x0C15, 1)
    table = struct.pack("<I", 0xFFFFFFFF) + row * 2
    content = unpack_tnef(HEAD + tnef_object(MESSAGE, 0x9004, 0x0006, table))
    assert content.defects == [
        "TNEF recipient table claims 4294967295 rows, holds 2: the rest were not read"
    ]


def test_property_values_are_counted_over_the_whole_stream() -> None:
    props = struct.pack("<I", 50) + struct.pack("<HHI", PT_INT, 0x3FDE, 1) * 50
    stream = HEAD + tnef_object(MESSAGE, 0x9003, 0x0006, props) * 3
    data, cuts = bounded_tnef(stream, ParseLimits(max_tnef_properties=120))
    assert cuts == ["TNEF has more than 120 property values: the rest were not read"]
    assert unpack_tnef(data).defects == []


def test_attachments_over_the_cap_are_not_read() -> None:
    files = [(f"f{i}.txt".encode(), b"data %d" % i) for i in range(12)]
    content = unpack_tnef(build_tnef(files), ParseLimits(max_tnef_attachments=10))
    assert [f.filename for f in content.files] == [f"f{i}.txt" for i in range(10)]
    assert content.defects == ["TNEF has more than 10 attachments: the rest were not read"]


def test_attributes_over_the_cap_are_not_read() -> None:
    stream = HEAD + tnef_object(MESSAGE, 0x8004, 0x0001, b"subject\0") * 5000
    data, cuts = bounded_tnef(stream, LIMITS)
    assert cuts == ["TNEF has more than 2000 attributes: the rest were not read"]
    assert len(data) < len(stream) // 2


def test_messages_embedded_too_deep_are_emptied() -> None:
    embedded = b"\x07\x03\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"
    stream = build_tnef([(b"inner.txt", b"deepest")])
    for level in range(6):
        value = embedded + stream
        props = (
            struct.pack("<I", 1)
            + struct.pack("<HHII", 0x000D, 0x3701, 1, len(value))
            + value
            + b"\0" * (-len(value) % 4)
        )
        stream = (
            HEAD
            + tnef_object(ATTACHMENT, 0x9002, 0x0006, b"\0" * 14)
            + tnef_object(ATTACHMENT, 0x8010, 0x0001, b"level%d.msg\0" % level)
            + tnef_object(ATTACHMENT, 0x9005, 0x0006, props)
        )
    data, cuts = bounded_tnef(stream, LIMITS)
    assert cuts == ["TNEF messages embedded deeper than 4 levels were not read"]
    assert [f.filename for f in unpack_tnef(data).files] == ["level5.msg"]


@pytest.mark.parametrize("body", [None, "Anbei die Unterlagen."])
def test_honest_tnef_passes_through_byte_for_byte(body: str | None) -> None:
    stream = build_tnef(FILES, body=body, html="<p>Hallo</p>", rtf=b"{\\rtf1 Hallo}")
    data, cuts = bounded_tnef(stream, LIMITS)
    assert (data, cuts) == (stream, [])
    assert data is stream


@pytest.mark.parametrize("cut", range(0, 400, 7))
def test_truncated_tnef_is_never_made_worse(cut: int) -> None:
    stream = build_tnef(FILES, body="Anbei.", html="<p>x</p>")[:cut]
    data, _ = bounded_tnef(stream, LIMITS)
    assert len(data) <= len(stream)
    unpack_tnef(stream)  # must not raise
