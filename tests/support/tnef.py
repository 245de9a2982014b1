"""winmail.dat built byte by byte, as Outlook writes it (TNEF objects, MAPI properties), and
the mail that carries it."""

from __future__ import annotations

import struct
from email.message import EmailMessage

from compressed_rtf import compress  # type: ignore[import-untyped]

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
