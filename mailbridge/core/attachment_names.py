"""The name of every attachment: the one its part gives, else one built from its type.

In order: the Content-Disposition `filename`, the Content-Type `name` (both with RFC 2231
continuations and charsets, and the RFC 2047 words many clients put there), the last
segment of the Content-Location, an inline image's Content-ID; a part that gives none of
them is named after its type ("image001.jpg", "attachment-2.pdf") and a defect says so.
Every name is made safe to save (core.safe_text).
"""

from __future__ import annotations

from dataclasses import replace
from email import utils
from email.message import Message
from functools import lru_cache
from mimetypes import MimeTypes
from urllib.parse import unquote_to_bytes, urlsplit

from mailbridge.core.message import Attachment
from mailbridge.core.mime_parser import split_params
from mailbridge.core.mime_text import decode_bytes, decode_header_value
from mailbridge.core.safe_text import safe_filename

_NAME_PARAMETERS = (("content-disposition", "filename"), ("content-type", "name"))
# Types the standard table has no extension for, which mail carries unnamed all the same.
_EXTENSIONS = {
    "image/jpg": ".jpg",
    "image/pjpeg": ".jpg",
    "text/calendar": ".ics",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
}


def part_filename(part: Message, defects: list[str]) -> str | None:
    """The name the part's `filename` or, failing that, `name` parameter gives it, decoded
    and made safe; None when neither gives one."""
    for header, parameter in _NAME_PARAMETERS:
        try:
            value = _parameter(part, header, parameter)
        except Exception:  # noqa: BLE001 - RFC 2231 pieces that do not fit together, and the like
            defects.append(f"attachment {parameter} could not be decoded")
            continue
        name = safe_filename(value) if value else ""
        if name:
            return name
    return None


def location_name(part: Message) -> str | None:
    """The last segment of the part's Content-Location (a URL or a path), or None."""
    raw = _raw_header(part, "content-location")
    if raw is None:
        return None
    try:
        path = urlsplit(decode_header_value(raw)).path
        segment = path.replace("\\", "/").rstrip("/").rpartition("/")[2]
        data = unquote_to_bytes(segment.encode("utf-8", "surrogateescape"))
    except ValueError:  # a URL the standard library refuses (an unclosed "[" host)
        return None
    return safe_filename(decode_bytes(data, "utf-8")[0]) or None


def name_unnamed(attachments: list[Attachment], defects: list[str]) -> list[Attachment]:
    """`attachments` with a name for each that has none (an empty filename): an inline
    image's Content-ID, else one built from its type, numbered among those built."""
    named: list[Attachment] = []
    built = 0
    for attachment in attachments:
        name = attachment.filename or _content_id_name(attachment)
        if not name:
            built += 1
            name = built_name(attachment.content_type, built)
            defects.append(f"attachment without a name: named {name}")
        named.append(
            attachment if name == attachment.filename else replace(attachment, filename=name)
        )
    return named


def built_name(content_type: str, number: int) -> str:
    """ "image001.jpg", "attachment-2.pdf": a name from the type and a number."""
    stem = f"image{number:03d}" if content_type.startswith("image/") else f"attachment-{number}"
    return stem + extension(content_type)


def extension(content_type: str) -> str:
    """The usual extension of a media type; ".txt" for text (a delivery status is text
    too) and ".bin" for any other type nobody lists."""
    found = _EXTENSIONS.get(content_type) or _types().guess_extension(content_type, strict=False)
    if found:
        return found
    return ".txt" if content_type.startswith(("text/", "message/")) else ".bin"


def _content_id_name(attachment: Attachment) -> str:
    """An inline image's name from its Content-ID, or "".

    Only the part before "@": after it comes the sender's host, and Outlook's
    "image001.png@01DA2B3C.4D5E6F70" is the image001.png its user sees.
    """
    content_id = attachment.content_id
    if not (attachment.inline and content_id and attachment.content_type.startswith("image/")):
        return ""
    stem = safe_filename(content_id.partition("@")[0] or content_id)
    if not stem or _has_extension(stem, attachment.content_type):
        return stem
    return safe_filename(stem + extension(attachment.content_type))


def _has_extension(name: str, content_type: str) -> bool:
    known = [*_types().guess_all_extensions(content_type, strict=False), extension(content_type)]
    return name.lower().endswith(tuple(known))


@lru_cache(maxsize=1)
def _types() -> MimeTypes:
    """Python's own table of types, the same on every machine (the host's mime.types
    files, which the module-level functions also read, are left out)."""
    return MimeTypes()


def _parameter(part: Message, header: str, parameter: str) -> str | None:
    """One parameter of the part's first `header`, decoded: an RFC 2231 value (with
    continuations, in its charset) before a plain one, RFC 2047 words in it decoded, raw
    8-bit bytes decoded; None when the header or the parameter is missing.

    Read from the raw header: the email package turns a header with 8-bit bytes into an
    object whose text has U+FFFD in place of every one of them.
    """
    raw = _raw_header(part, header)
    if raw is None:
        return None
    pairs = [("", "")]  # decode_params passes the first pair (the type) through as it is
    for piece in split_params(raw):  # the type itself has no "=": it is left out below
        name, equals, value = piece.partition("=")
        if equals and (name == parameter or name.startswith(parameter + "*")):
            pairs.append((name, value))
    values = [value for _, value in utils.decode_params(pairs)[1:]]
    extended = [value for value in values if isinstance(value, tuple)]
    if extended:
        return _extended_text(*extended[0])
    plain = [value for value in values if isinstance(value, str)]
    return decode_header_value(utils.unquote(plain[0])) if plain else None


def _extended_text(charset: str | None, _language: str | None, quoted: str) -> str:
    """An RFC 2231 value's text: its %-decoded bytes in its charset (detected when the
    charset is missing or wrong, as for a body)."""
    text = utils.unquote(quoted)
    try:
        # %-escapes come back as characters U+0000-U+00FF; raw 8-bit bytes as surrogates.
        data = text.encode("latin-1", "surrogateescape")
    except UnicodeEncodeError:
        return decode_header_value(text)
    return decode_bytes(data, charset)[0]


def _raw_header(part: Message, name: str) -> str | None:
    """The part's first `name` header as the parser kept it, unfolded."""
    for key, value in part.raw_items():
        if key.strip().lower() == name:
            return str(value).replace("\r", "").replace("\n", "")
    return None
