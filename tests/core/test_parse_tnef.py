"""winmail.dat: TNEF built byte by byte here, unpacked into ordinary attachments and text."""

from __future__ import annotations

import struct
from email.message import EmailMessage

import pytest
from compressed_rtf import compress  # type: ignore[import-untyped]

from mailbridge.core.message import ParseLimits
from mailbridge.core.parse import parse_message
from mailbridge.core.tnef import unpack_tnef

pytestmark = pytest.mark.unit

LVL_MESSAGE, LVL_ATTACHMENT = 1, 2
PT_INT, PT_BINARY = 0x0003, 0x0102
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4
SHEET = b"PK\x03\x04 a spreadsheet"


def tnef_object(level: int, name: int, kind: int, data: bytes) -> bytes:
    checksum = sum(data) & 0xFFFF
    return struct.pack("<BHHI", level, name, kind, len(data)) + data + struct.pack("<H", checksum)


def mapi_properties(props: list[tuple[int, int, bytes | int]]) -> bytes:
    out = struct.pack("<I", len(props))
    for kind, name, value in props:
        out += struct.pack("<HH", kind, name)
        if isinstance(value, int):
            out += struct.pack("<I", value)
        else:
            out += struct.pack("<II", 1, len(value)) + value + b"\0" * (-len(value) % 4)
    return out


def build_tnef(
    files: list[tuple[bytes, bytes]],
    *,
    body: str | None = None,
    html: str | None = None,
    rtf: bytes | None = None,
) -> bytes:
    """TNEF as Outlook writes it: version, codepage, body, then one block per file."""
    data = struct.pack("<IH", 0x223E9F78, 0x0001)
    data += tnef_object(LVL_MESSAGE, 0x9006, 0x0008, struct.pack("<I", 0x10000))
    data += tnef_object(LVL_MESSAGE, 0x9007, 0x0006, struct.pack("<II", 1252, 0))
    if body is not None:
        data += tnef_object(LVL_MESSAGE, 0x800C, 0x0002, body.encode("cp1252"))
    props: list[tuple[int, int, bytes | int]] = []
    if html is not None:
        props += [(PT_INT, 0x3FDE, 65001), (PT_BINARY, 0x1013, html.encode())]
    if rtf is not None:
        props.append((PT_BINARY, 0x1009, bytes(compress(rtf, compressed=True))))
    if props:
        data += tnef_object(LVL_MESSAGE, 0x9003, 0x0006, mapi_properties(props))
    for title, payload in files:
        data += tnef_object(LVL_ATTACHMENT, 0x9002, 0x0006, b"\0" * 14)  # opens a file
        data += tnef_object(LVL_ATTACHMENT, 0x8010, 0x0001, title + b"\0")
        data += tnef_object(LVL_ATTACHMENT, 0x800F, 0x0006, payload)
    return data


def outlook_mail(winmail: bytes, text: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Paula <paula@example.org>"
    msg["To"] = "support@example.com"
    msg["Subject"] = "Unterlagen"
    msg["Message-ID"] = "<tnef-1@example.org>"
    if text is not None:
        msg.set_content(text)
    msg.add_attachment(winmail, maintype="application", subtype="ms-tnef", filename="winmail.dat")
    return msg.as_bytes()


FILES = [(b"Angebot.pdf", PDF), ("Größe.xlsx".encode("cp1252"), SHEET)]


def test_winmail_dat_is_replaced_by_the_files_inside() -> None:
    raw = outlook_mail(build_tnef(FILES, body="Anbei die Unterlagen."), text="Siehe Anhang.")
    msg = parse_message(raw)
    assert [(a.filename, a.content_type, a.size) for a in msg.attachments] == [
        ("Angebot.pdf", "application/pdf", len(PDF)),
        (
            "Größe.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            len(SHEET),
        ),
    ]
    assert [a.payload for a in msg.attachments] == [PDF, SHEET]
    assert {a.container for a in msg.attachments} == {"winmail.dat"}
    assert msg.text.strip() == "Siehe Anhang."  # the message's own text part wins
    assert not any("TNEF" in d for d in msg.defects)


def test_tnef_plain_body_is_the_text_when_the_message_has_none() -> None:
    msg = parse_message(outlook_mail(build_tnef(FILES, body="Anbei die Unterlagen.")))
    assert msg.text == "Anbei die Unterlagen."
    assert msg.reply_text == "Anbei die Unterlagen."


def test_tnef_html_body_becomes_text_and_is_kept_as_html() -> None:
    html = "<p>Guten Tag,</p><p>die <b>Rechnung</b> fehlt.</p>"
    msg = parse_message(outlook_mail(build_tnef([], html=html)))
    assert msg.html == html
    assert "die Rechnung fehlt." in msg.text
    assert msg.attachments == ()


def test_tnef_rtf_body_becomes_text() -> None:
    rtf = rb"{\rtf1\ansi\ansicpg1252 {\fonttbl\f0 Arial;}\f0 Bitte um R\'fcckruf.\par}"
    msg = parse_message(outlook_mail(build_tnef([(b"a.txt", b"abc")], rtf=rtf)))
    assert msg.text == "Bitte um Rückruf."
    assert [a.filename for a in msg.attachments] == ["a.txt"]


def test_size_limit_applies_to_files_inside_tnef() -> None:
    raw = outlook_mail(build_tnef(FILES, body="x"))
    msg = parse_message(raw, ParseLimits(max_attachment_bytes=100))
    pdf, sheet = msg.attachments
    assert (pdf.payload, pdf.size, pdf.skipped) == (b"", len(PDF), True)
    assert (sheet.payload, sheet.skipped) == (SHEET, False)


@pytest.mark.parametrize("cut", [0, 3, 7, 20, 40, 60, 90, 150, 400, 1000, 1100])
def test_truncated_tnef_never_raises(cut: int) -> None:
    data = build_tnef(FILES, body="Anbei.", html="<p>x</p>")[:cut]
    content = unpack_tnef(data)  # must not raise
    msg = parse_message(outlook_mail(data, text="hi"))
    assert msg.text.strip() == "hi"
    if not content.files and not content.text and not content.html:
        # Nothing could be read: the original stays, so nothing is lost.
        (kept,) = msg.attachments
        assert kept.filename == "winmail.dat" and kept.payload == data


def test_not_tnef_at_all_is_kept_with_a_defect() -> None:
    msg = parse_message(outlook_mail(b"this is no TNEF", text="hi"))
    (kept,) = msg.attachments
    assert (kept.filename, kept.payload) == ("winmail.dat", b"this is no TNEF")
    assert any(d.startswith("TNEF could not be unpacked") for d in msg.defects)
