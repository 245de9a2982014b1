"""Unpacking Outlook's TNEF (`winmail.dat`): the files and the body hidden inside it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from striprtf.striprtf import rtf_to_text

from mailbridge.core.message import ParseLimits
from mailbridge.core.mime_text import decode_bytes
from mailbridge.core.tnef_guard import bounded_tnef

TNEF_CONTENT_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
TNEF_SIGNATURE = b"\x78\x9f\x3e\x22"  # 0x223E9F78, little-endian

# What a helpdesk user opens; anything else is offered as a download.
_CONTENT_TYPES: dict[str, str] = {
    "pdf": "application/pdf", "txt": "text/plain", "csv": "text/csv", "htm": "text/html",
    "html": "text/html", "rtf": "application/rtf", "xml": "application/xml",
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
    "bmp": "image/bmp", "tif": "image/tiff", "tiff": "image/tiff", "zip": "application/zip",
    "doc": "application/msword", "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint", "msg": "application/vnd.ms-outlook",
    "eml": "message/rfc822", "ics": "text/calendar",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}  # fmt: skip
_OCTET_STREAM = "application/octet-stream"
# striprtf runs its expressions for hyperlinks and the font table over a line at a time, some
# in time cubic in the line's length: 30 KB of unclosed hyperlink fields on one line (4 KB
# compressed in a winmail.dat) took 17 s. RTF readers ignore line breaks, so a long line is
# broken before a group or control word; Outlook writes far shorter lines.
_RTF_LINE = 1024
_RTF_MARK = re.compile(r"\r\n?|\n|\\'|\\.|[{}]", re.S)  # \' (a hex byte) is no place for one


@dataclass(slots=True)
class TnefFile:
    filename: str | None
    content_type: str
    data: bytes


@dataclass(slots=True)
class TnefContent:
    """What a TNEF blob held. `defects` is non-empty when some of it could not be read."""

    files: list[TnefFile] = field(default_factory=list)
    text: str | None = None
    html: str | None = None
    defects: list[str] = field(default_factory=list)


def is_tnef(content_type: str, filename: str | None, data: bytes) -> bool:
    """Labelled or named as TNEF, or starting with its signature."""
    if content_type in TNEF_CONTENT_TYPES or (filename or "").lower() == "winmail.dat":
        return True
    return content_type == "application/octet-stream" and data.startswith(TNEF_SIGNATURE)


def unpack_tnef(data: bytes, limits: ParseLimits | None = None) -> TnefContent:
    """The files and body inside TNEF bytes, read within the counts of `limits`. Never
    raises: failures, and what the counts cut, become defects."""
    # Imported here: building its property tables costs 50 ms, which every process that
    # parses mail (each command, each parse worker) paid at start for the rare winmail.dat.
    from tnefparse import TNEF  # type: ignore[import-untyped]

    content = TnefContent()
    data, cuts = bounded_tnef(data, limits or ParseLimits())
    content.defects.extend(cuts)
    try:
        tnef = TNEF(data, do_checksum=False)
    except Exception as exc:  # noqa: BLE001 - tnefparse raises errors of every kind on bad input
        content.defects.append(f"TNEF could not be unpacked: {exc!r}")
        return content
    codepage = tnef.codepage if isinstance(tnef.codepage, str) else None
    for index, item in enumerate(tnef.attachments):
        try:
            content.files.append(_file(item, codepage))
        except Exception as exc:  # noqa: BLE001 - one unreadable file must not cost the others
            content.defects.append(f"TNEF attachment {index + 1} could not be read: {exc!r}")
    content.html = _body_text(tnef.htmlbody, codepage, content.defects, "HTML")
    content.text = _body_text(tnef.body, codepage, content.defects, "text")
    if content.text is None and content.html is None and tnef.has_body():
        content.text = _rtf_text(tnef, content.defects)
    return content


def _file(item: Any, codepage: str | None) -> TnefFile:
    try:
        name = _name(item.long_filename(), codepage)
    except UnicodeDecodeError:  # tnefparse reads 8-bit names as UTF-8; Outlook wrote cp1252
        name = None
    # The raw title bytes, decoded by the TNEF's own codepage when tnefparse could not.
    name = name or _name(getattr(item, "_name", None), codepage)
    data = item.data if isinstance(item.data, bytes) else b""
    return TnefFile(name, _content_type(name), data)


def _name(value: Any, codepage: str | None) -> str | None:
    if isinstance(value, bytes):
        value, _ = decode_bytes(value, codepage)
    if not isinstance(value, str):
        return None
    return value.strip("\x00").strip() or None


def _content_type(filename: str | None) -> str:
    if not filename or "." not in filename:
        return _OCTET_STREAM
    return _CONTENT_TYPES.get(filename.rsplit(".", 1)[1].lower(), _OCTET_STREAM)


def _body_text(value: Any, codepage: str | None, defects: list[str], what: str) -> str | None:
    if isinstance(value, bytes):
        value, note = decode_bytes(value.rstrip(b"\x00"), codepage)
        if note:
            defects.append(f"TNEF {what} body: {note}")
    if not isinstance(value, str) or not value.strip("\x00").strip():
        return None
    return value.strip("\x00").replace("\r\n", "\n")


def _rtf_text(tnef: Any, defects: list[str]) -> str | None:
    try:
        # tnefparse decompresses with the compressed-rtf package; without it this
        # would still be compressed bytes, which the signature check turns into a defect.
        rtf = bytes(tnef.rtfbody or b"")
        if not rtf.lstrip().startswith(b"{\\rtf"):
            raise ValueError("not an RTF document")
        text = rtf_to_text(
            _short_lines(rtf.decode("latin-1")),  # type: ignore[no-untyped-call]
            errors="replace",
        )
    except Exception as exc:  # noqa: BLE001 - a corrupt RTF stream: the attachments still count
        defects.append(f"TNEF RTF body could not be read: {exc!r}")
        return None
    return str(text).replace("\r\n", "\n").strip() or None


def _short_lines(rtf: str) -> str:
    """`rtf` with a line break before the first group or control word past _RTF_LINE
    characters into a line, so that no line is much longer."""
    pieces: list[str] = []
    line_start = done = 0
    for mark in _RTF_MARK.finditer(rtf):
        if mark.group()[0] in "\r\n":
            line_start = mark.end()
        elif mark.group() != "\\'" and mark.start() - line_start > _RTF_LINE:
            pieces += [rtf[done : mark.start()], "\n"]
            done = line_start = mark.start()
    return "".join([*pieces, rtf[done:]]) if pieces else rtf
