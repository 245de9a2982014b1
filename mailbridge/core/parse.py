"""Raw email bytes to a ParsedMessage: never raises, records what was odd as defects."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from typing import Any

from mailbridge.core.html_strip import strip_tags, visible_length
from mailbridge.core.language import detect_language
from mailbridge.core.message import Address, ParsedMessage, ParseLimits
from mailbridge.core.mime_text import (
    HtmlText,
    decode_bytes,
    decode_header_value,
    html_to_texts,
    unsurrogate,
)
from mailbridge.core.mime_tree import read_tree
from mailbridge.core.parts import Body, walk
from mailbridge.core.parts import message_id as _message_id
from mailbridge.core.reply_trim import trim_reply

# compat32 keeps headers as plain strings, which is several times faster than building
# policy.default header objects for every Received line; the structured headers we
# need (addresses) still go through policy.default's parser below.
_HEADER_PARSER = BytesHeaderParser(policy=policy.compat32)
_MSGID_RE = re.compile(r"<([^<>\s]+)>")
_SUBJECT_PREFIX_RE = re.compile(
    r"^\s*(?:re|fwd?|aw|r|i|rif|antw|sv|tr|wg|vs|ref)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*", re.I
)
_BODY_SPLIT_RE = re.compile(rb"\r?\n\r?\n")
# An addr-spec as it appears in real mail; quoted local parts are too rare to matter.
_ADDR_SPEC_RE = re.compile(r"[^\s@<>()\[\]\\,;:\"]+@[^\s@<>()\[\]\\,;:\"]+")
_ADDR_SCAN_RE = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_MAX_HEADER_VALUES = 50  # a header repeated thousands of times is an attack, not mail


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


def parse_message(raw: bytes, limits: ParseLimits | None = None) -> ParsedMessage:
    """Parse raw email bytes. Never raises; anything odd lands in `defects`.

    Attachments over `limits` are listed with an empty payload and a `skipped_reason`;
    a message over its limit keeps headers and text but no attachment payload, and a
    defect says so.
    """
    defects: list[str] = []
    limits = limits or ParseLimits()
    try:
        msg, cut = read_tree(raw, limits)
    except Exception as exc:  # the stdlib parser is lenient; this is the last resort
        return _unparseable(raw, f"message could not be parsed: {exc!r}")
    if cut is not None:
        defects.append(cut)
    headers = _read_headers(msg, defects)
    body = Body(limits=limits)
    cap = body.limits.max_message_bytes
    if cap is not None and len(raw) > cap:
        body.skip_all = f"message over the size limit of {cap} bytes"
        defects.append(f"message is {len(raw)} bytes, {body.skip_all}: attachments not kept")
    try:
        walk(msg, body)
    except Exception as exc:  # keep the headers and whatever parts were read
        body.defects.append(f"MIME structure could not be read: {exc!r}")
    defects.extend(body.defects)
    defects.extend(_safe(lambda: _stdlib_defects(msg), [], defects, "defects unreadable"))
    return _assemble(msg, headers, body, defects)


def _assemble(
    msg: Message, headers: dict[str, tuple[str, ...]], body: Body, defects: list[str]
) -> ParsedMessage:
    html = "\n".join(body.html or body.tnef_html) or None
    text, quoted = _body_text(body, html, defects)
    reply_text = _safe(lambda: trim_reply(quoted), text, defects, "reply trimming failed")
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


def _body_text(body: Body, html: str | None, defects: list[str]) -> tuple[str, str]:
    """(text, the text reply trimming reads): the text part, else the HTML, else TNEF."""
    if body.plain:
        text = "\n".join(body.plain)
        return text, text
    if html is not None:
        converted = _safe(
            lambda: html_to_texts(html), HtmlText("", ""), defects, "HTML could not be converted"
        )
        return _or_stripped(converted, html, defects)
    text = "\n".join(body.tnef_text)
    return text, text


def _or_stripped(converted: HtmlText, html: str, defects: list[str]) -> tuple[str, str]:
    """The converted HTML, unless it shows clearly less than the HTML holds (libxml2 stops
    reading at a depth limit, and what lies deeper would be lost without a word): then the
    text between its tags, with a defect."""
    stripped = strip_tags(html)
    seen, held = visible_length(converted.text), visible_length(stripped)
    if held == 0 or seen * 2 >= held:
        return converted.text, converted.quoted
    defects.append(f"HTML converted to {seen} of its {held} visible characters (nested too "
                   "deep, or malformed): text taken by removing its tags")
    return stripped, stripped


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
        value = str(raw_value)
        try:
            header = policy.default.header_fetch_parse(raw_name, value)
            strict = [(a.display_name, a.addr_spec) for a in header.addresses]
            if not all(_ADDR_SPEC_RE.fullmatch(spec) for _, spec in strict):
                raise ValueError("an address the strict parser could not read")
        except Exception:  # the strict parser gave up: use the forgiving one
            defects.append(f"{raw_name} header could not be parsed strictly")
            pairs.extend(_forgiving_pairs(value))
            continue
        # "bob@example.com (Bob Jones)": the old comment form still names the sender.
        pairs.extend(_names_from_comments(strict, value) if "(" in value else strict)
    return pairs


def _forgiving_pairs(value: str) -> list[tuple[str, str]]:
    text = decode_header_value(value)
    found = getaddresses([text])
    # A bare local part ("MAILER-DAEMON (Mail Delivery System)") still names the sender.
    if all(_ADDR_SPEC_RE.fullmatch(spec) or "@" not in spec for _, spec in found):
        return found
    # Unbalanced quotes and the like: every address in the text still counts.
    return [("", spec) for spec in _ADDR_SCAN_RE.findall(text)]


def _names_from_comments(pairs: list[tuple[str, str]], value: str) -> list[tuple[str, str]]:
    named = {spec.lower(): display for display, spec in getaddresses([value]) if display}
    return [
        (display or decode_header_value(named.get(spec.lower(), "")), spec)
        for display, spec in pairs
    ]


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
