"""Raw email bytes to a ParsedMessage: never raises, records what was odd as defects."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from typing import Any

from mailbridge.core.language import detect_language
from mailbridge.core.message import Address, Attachment, ParsedMessage
from mailbridge.core.mime_text import (
    decode_bytes,
    decode_header_value,
    html_to_text,
    unsurrogate,
)
from mailbridge.core.reply_trim import trim_reply

# compat32 keeps headers as plain strings, which is several times faster than building
# policy.default header objects for every Received line; the structured headers we
# need (addresses) still go through policy.default's parser below.
_PARSER = BytesParser(policy=policy.compat32)
_HEADER_PARSER = BytesHeaderParser(policy=policy.compat32)
_MSGID_RE = re.compile(r"<([^<>\s]+)>")
_SUBJECT_PREFIX_RE = re.compile(
    r"^\s*(?:re|fwd?|aw|r|i|rif|antw|sv|tr|wg|vs|ref)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*", re.I
)
_BODY_SPLIT_RE = re.compile(rb"\r?\n\r?\n")
_MAX_HEADER_VALUES = 50  # a header repeated thousands of times is an attack, not mail


@dataclass(slots=True)
class _Body:
    """What the walk over the MIME tree collects."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)


def normalize_subject(subject: str) -> str:
    """The subject without reply/forward prefixes in the usual languages."""
    text = " ".join(subject.split())
    while True:
        stripped = _SUBJECT_PREFIX_RE.sub("", text, count=1)
        if stripped == text:
            return text
        text = stripped


def message_fingerprint(raw: bytes) -> tuple[str | None, str]:
    """(Message-ID without brackets or None, hex sha256 fingerprint) from headers and body hash.

    With a Message-ID the fingerprint combines it with the From address, the Date header
    and the body's hash: the same mail fetched twice matches, a reused Message-ID on
    different mail does not. Without one it is the hash of the raw bytes.
    """
    split = _BODY_SPLIT_RE.search(raw)
    head, body = (raw[: split.start()], raw[split.end() :]) if split else (raw, b"")
    try:
        headers = _HEADER_PARSER.parsebytes(head + b"\n\n")
        message_id = _message_id(str(headers.get("Message-ID", "")))
        sender = parseaddr(str(headers.get("From", "")))[1].strip().lower()
        date = " ".join(str(headers.get("Date", "")).split())
    except Exception:  # unreadable headers: fall back to the raw hash below
        message_id = None
    if message_id is None:
        return None, hashlib.sha256(raw).hexdigest()
    body_hash = hashlib.sha256(body.replace(b"\r\n", b"\n")).hexdigest()
    key = "\x00".join((message_id, sender, date, body_hash))
    return message_id, hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse raw email bytes. Never raises; anything odd lands in `defects`."""
    defects: list[str] = []
    try:
        msg: Message = _PARSER.parsebytes(raw)
    except Exception as exc:  # the stdlib parser is lenient; this is the last resort
        return _unparseable(raw, f"message could not be parsed: {exc!r}")
    headers = _read_headers(msg, defects)
    body = _Body()
    try:
        _walk(msg, body, in_related=False)
    except Exception as exc:  # keep the headers and whatever parts were read
        body.defects.append(f"MIME structure could not be read: {exc!r}")
    defects.extend(body.defects)
    defects.extend(_safe(lambda: _stdlib_defects(msg), [], defects, "defects unreadable"))
    return _assemble(msg, headers, body, defects)


def _assemble(
    msg: Message, headers: dict[str, tuple[str, ...]], body: _Body, defects: list[str]
) -> ParsedMessage:
    html = "\n".join(body.html) if body.html else None
    text = "\n".join(body.plain)
    if not body.plain and html is not None:
        text = _safe(lambda: html_to_text(html), "", defects, "HTML could not be converted")
    reply_text = _safe(lambda: trim_reply(text), text, defects, "reply trimming failed")
    language = _safe(
        lambda: detect_language(reply_text or text), None, defects, "language detection failed"
    )
    message_id = _message_id(_first(headers, "message-id"))
    if message_id is None:
        defects.append("missing Message-ID")
    return ParsedMessage(
        message_id=message_id,
        from_=_first_address(msg, "from", defects),
        to=_addresses(msg, "to", defects),
        cc=_addresses(msg, "cc", defects),
        reply_to=_addresses(msg, "reply-to", defects),
        subject=_first(headers, "subject"),
        date=_date(headers, defects),
        in_reply_to=_message_id(_first(headers, "in-reply-to")),
        references=tuple(_references(_first(headers, "references"))),
        text=text,
        reply_text=reply_text,
        html=html,
        attachments=tuple(body.attachments),
        language=language,
        defects=tuple(dict.fromkeys(defects)),
        headers=headers,
    )


def _safe(compute: Any, default: Any, defects: list[str], note: str) -> Any:
    try:
        return compute()
    except Exception as exc:  # one failing step must not cost the whole message
        defects.append(f"{note}: {exc!r}")
        return default


def _unparseable(raw: bytes, defect: str) -> ParsedMessage:
    text, _ = decode_bytes(raw, None)
    return ParsedMessage(
        message_id=None, from_=None, to=(), cc=(), reply_to=(), subject="", date=None,
        in_reply_to=None, references=(), text=text, reply_text=text, html=None,
        attachments=(), language=None, defects=(defect, "missing Message-ID"),
    )  # fmt: skip


# --- headers -------------------------------------------------------------------------


def _read_headers(msg: Message, defects: list[str]) -> dict[str, tuple[str, ...]]:
    headers: dict[str, list[str]] = {}
    for name, raw_value in msg.raw_items():
        key = name.strip().lower()
        values = headers.setdefault(key, [])
        if len(values) >= _MAX_HEADER_VALUES:
            continue
        values.append(_header_text(name, str(raw_value), defects))
    return {key: tuple(values) for key, values in headers.items()}


def _header_text(name: str, raw_value: str, defects: list[str]) -> str:
    try:
        return decode_header_value(raw_value)
    except Exception:  # not expected; a header must never cost the message
        defects.append(f"header {name} could not be decoded")
        return " ".join(raw_value.split())


def _first(headers: dict[str, tuple[str, ...]], name: str) -> str:
    values = headers.get(name)
    return values[0] if values else ""


def _message_id(value: str) -> str | None:
    match = _MSGID_RE.search(value)
    if match:
        return match.group(1)
    bare = value.strip().strip("<>").strip()
    return bare.split()[0] if bare else None


def _references(value: str) -> list[str]:
    found = _MSGID_RE.findall(value)
    return found if found else value.split()


def _addresses(msg: Message, name: str, defects: list[str]) -> tuple[Address, ...]:
    out: list[Address] = []
    for display, spec in _address_pairs(msg, name, defects):
        spec = spec.strip().rstrip(".").lower()  # "bob@example.com." is still Bob
        display = " ".join(unsurrogate(display).split())
        if "@" not in spec and not display:
            continue
        out.append(Address(display, spec if "@" in spec else ""))
    return tuple(out)


def _address_pairs(msg: Message, name: str, defects: list[str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for raw_name, raw_value in msg.raw_items():
        if raw_name.strip().lower() != name:
            continue
        try:
            header = policy.default.header_fetch_parse(raw_name, str(raw_value))
            strict = [(a.display_name, a.addr_spec) for a in header.addresses]
            if any("@" not in spec for _, spec in strict):
                raise ValueError("an address the strict parser could not read")
            pairs.extend(strict)
        except Exception:  # the strict parser gave up: use the forgiving one
            defects.append(f"{raw_name} header could not be parsed strictly")
            pairs.extend(getaddresses([decode_header_value(str(raw_value))]))
    return pairs


def _first_address(msg: Message, name: str, defects: list[str]) -> Address | None:
    found = _addresses(msg, name, defects)
    if not found:
        defects.append(f"missing {name.title()}")
        return None
    return found[0]


def _date(headers: dict[str, tuple[str, ...]], defects: list[str]) -> datetime | None:
    value = _first(headers, "date")
    if not value:
        defects.append("missing Date")
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.append("invalid Date")
        return None
    # "-0000" means the zone is unknown; UTC is the only honest reading.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _stdlib_defects(msg: Message) -> list[str]:
    notes: list[str] = []
    for part in msg.walk():
        for defect in getattr(part, "defects", ()):
            detail = str(defect)
            name = type(defect).__name__
            notes.append(f"{name}: {detail}" if detail else name)
    return notes


# --- body ----------------------------------------------------------------------------


def _walk(part: Message, body: _Body, *, in_related: bool) -> None:
    content_type = part.get_content_type()
    if content_type.startswith("message/") and content_type != "message/rfc822":
        # delivery-status and friends parse as header blocks; they are data, not body
        body.attachments.append(_message_part(part, content_type))
        return
    if part.is_multipart() and content_type != "message/rfc822":
        related = in_related or content_type == "multipart/related"
        for child in part.get_payload():
            if isinstance(child, Message):
                _walk(child, body, in_related=related)
        return
    if content_type == "message/rfc822":
        body.attachments.append(_attached_message(part, body))
        return
    disposition = part.get_content_disposition()
    filename = _filename(part, body)
    is_body_text = content_type in ("text/plain", "text/html") and (
        disposition != "attachment" and filename is None
    )
    if is_body_text:
        text = _part_text(part, body)
        (body.plain if content_type == "text/plain" else body.html).append(text)
        return
    body.attachments.append(_attachment(part, filename, disposition, in_related))


def _part_text(part: Message, body: _Body) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    text, note = decode_bytes(data, part.get_content_charset())
    if note:
        body.defects.append(f"{part.get_content_type()}: {note}")
    return text.replace("\r\n", "\n")


def _filename(part: Message, body: _Body) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # broken RFC 2231 parameters
        body.defects.append("attachment filename could not be decoded")
        return None
    if not name:
        return None
    return unsurrogate(decode_header_value(str(name)).strip()) or None


def _attachment(
    part: Message, filename: str | None, disposition: str | None, in_related: bool
) -> Attachment:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else _as_bytes(part)
    content_id = _message_id(str(part.get("content-id", "") or ""))
    content_type = part.get_content_type()
    inline = (disposition == "inline" and content_id is not None) or (
        in_related and not content_type.startswith("text/")
    )
    return Attachment(filename, content_type, len(data), inline, content_id, data)


def _attached_message(part: Message, body: _Body) -> Attachment:
    inner = part.get_payload()
    inner_msg = inner[0] if isinstance(inner, list) and inner else None
    data = _as_bytes(inner_msg) if isinstance(inner_msg, Message) else _as_bytes(part)
    filename = _filename(part, body)
    if not filename:
        subject = ""
        if isinstance(inner_msg, Message):
            subject = decode_header_value(str(inner_msg.get("subject", "") or ""))
        filename = f"{_safe_name(subject) or 'message'}.eml"
    return Attachment(filename, "message/rfc822", len(data), False, None, data)


def _message_part(part: Message, content_type: str) -> Attachment:
    payload = part.get_payload()
    if isinstance(payload, list):
        data = b"".join(_as_bytes(block) for block in payload if isinstance(block, Message))
    else:
        data = str(payload).encode("utf-8", "surrogateescape")
    return Attachment(None, content_type, len(data), False, None, data)


def _safe_name(subject: str) -> str:
    return re.sub(r"[\\/:*?\"<>|\x00-\x1f]+", "_", subject).strip(" ._")[:120]


def _as_bytes(part: Message) -> bytes:
    try:
        return part.as_bytes(policy=policy.compat32)
    except Exception:  # a part that cannot be re-serialised still has a size of zero
        return b""
