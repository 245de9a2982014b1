"""Raw email bytes to a ParsedMessage: never raises, records what was odd as defects."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import parseaddr, parsedate_to_datetime
from itertools import islice
from typing import Any

from mailbridge.core.addresses import Mailbox, parse_address_list
from mailbridge.core.attachment_names import name_unnamed
from mailbridge.core.header_block import header_block_broken, mend_header_block
from mailbridge.core.html_strip import strip_tags, visible_length
from mailbridge.core.language import detect_language
from mailbridge.core.message import Address, ParsedMessage, ParseLimits
from mailbridge.core.mime_text import (
    HtmlText,
    decode_8bit,
    decode_bytes,
    decode_header_value,
    header_charset,
    html_to_texts,
    raw_header_bytes,
)
from mailbridge.core.mime_tree import read_tree
from mailbridge.core.parts import Body, walk
from mailbridge.core.parts import message_id as _message_id
from mailbridge.core.reply_trim import trim_reply
from mailbridge.core.sender import SenderChoice, choose_sender

# compat32 keeps headers as plain strings, which is several times faster than building
# policy.default header objects for every Received line; the structured headers we
# need (addresses) still go through policy.default's parser below.
_HEADER_PARSER = BytesHeaderParser(policy=policy.compat32)
_MSGID_RE = re.compile(r"<([^<>\s]+)>")
# All the prefixes at once: stripped one by one, each pass copied the rest of the subject.
_SUBJECT_PREFIXES_RE = re.compile(
    r"(?:\s*(?:re|fwd?|aw|r|i|rif|antw|sv|tr|wg|vs|ref)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)++", re.I
)
_BODY_SPLIT_RE = re.compile(rb"\r?\n\r?\n")
_MAX_HEADER_VALUES = 50  # a header repeated thousands of times is an attack, not mail


def normalize_subject(subject: str) -> str:
    """The subject without reply/forward prefixes in the usual languages."""
    text = " ".join(subject.split())
    prefixes = _SUBJECT_PREFIXES_RE.match(text)
    return text[prefixes.end() :] if prefixes else text


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
    except Exception:  # noqa: BLE001 - unreadable headers: fall back to the raw hash below
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
        if header_block_broken(msg):  # rare: mended and read again
            mended, repairs = mend_header_block(raw)
            if repairs:
                msg, cut = read_tree(mended, limits)
                defects.extend(repairs)
    except Exception as exc:  # noqa: BLE001 - the stdlib parser is lenient; this is the last resort
        return _unparseable(raw, f"message could not be parsed: {exc!r}")
    unread = [cut] if cut is not None else []
    defects.extend(unread)
    charset = _header_charset(msg)
    headers, order = _read_headers(msg, defects, charset)
    body = Body(limits=limits)
    cap = body.limits.max_message_bytes
    if cap is not None and len(raw) > cap:
        body.skip_all = f"message over the size limit of {cap} bytes"
        unread.append(f"message is {len(raw)} bytes, {body.skip_all}: attachments not kept")
        defects.append(unread[-1])
    try:
        walk(msg, body)
    except Exception as exc:  # noqa: BLE001 - keep the headers and whatever parts were read
        body.defects.append(f"MIME structure could not be read: {exc!r}")
    body.attachments = name_unnamed(body.attachments, body.defects)
    defects.extend(body.defects)
    defects.extend(_safe(lambda: _stdlib_defects(msg), [], defects, "defects unreadable"))
    return _assemble(msg, headers, body, defects, tuple(unread), charset, order=order)


def _assemble(
    msg: Message,
    headers: dict[str, tuple[str, ...]],
    body: Body,
    defects: list[str],
    unread: tuple[str, ...] = (),
    charset: str | None = None,
    *,
    order: tuple[str, ...] = (),
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
    reply_to = _mailboxes(msg, "reply-to", defects, charset) or []
    sender = _sender(msg, reply_to, defects, charset)
    return ParsedMessage(
        message_id=message_id,
        from_=sender.sender,
        sender_header=sender.header,
        to=_addresses(msg, "to", defects, charset),
        cc=_addresses(msg, "cc", defects, charset),
        reply_to=_as_addresses(reply_to),
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
        header_order=order,
        unread=unread,
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
    defects.append(
        f"HTML converted to {seen} of its {held} visible characters (nested too "
        "deep, or malformed): text taken by removing its tags"
    )
    return stripped, stripped


def _safe(compute: Any, default: Any, defects: list[str], note: str) -> Any:
    try:
        return compute()
    except Exception as exc:  # noqa: BLE001 - one failing step must not cost the whole message
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

# Unstructured fields: the only ones whose RFC 2047 encoded words are text. Every other
# header (addresses, Message-ID, References, Received, Authentication-Results, DKIM,
# List-*) keeps its encoded words as written: decoding them would let a sender smuggle
# a ";", a quote or an address past the grammar that reads the field.
UNSTRUCTURED = frozenset(
    {
        "subject",
        "comments",
        "keywords",
        "content-description",
        "thread-topic",
        "organization",
        "x-mailer",
        "user-agent",
    }
)
MAX_HEADER_FIELDS = 1000  # fields read per message; real mail has a few dozen


def _header_charset(msg: Message) -> str | None:
    """The charset that reads the message's raw 8-bit header bytes (mime_text.header_charset):
    a client that writes them unencoded writes them in the charset it declares for its text,
    so that is tried first."""
    samples = [
        data
        for _, value in islice(msg.raw_items(), MAX_HEADER_FIELDS)
        if (data := raw_header_bytes(str(value))) is not None
    ]
    if not samples:
        return None
    declared = [msg.get_param("charset")]
    for part in islice(msg.walk(), 20):
        if part.get_content_maintype() == "text" and part.get_param("charset"):
            declared.append(part.get_param("charset"))
            break
    return header_charset(samples, [c for c in declared if isinstance(c, str)])


def _read_headers(
    msg: Message, defects: list[str], charset: str | None = None
) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """(name -> values, the names in the order the fields came): the order says which
    header lies above which, which trust decisions need (core/spam_headers.py)."""
    headers: dict[str, list[str]] = {}
    order: list[str] = []
    for count, (name, raw_value) in enumerate(msg.raw_items()):
        if count == MAX_HEADER_FIELDS:
            defects.append(f"more than {MAX_HEADER_FIELDS} header fields: the rest are not read")
            break
        key = name.strip().lower()
        order.append(key)
        values = headers.setdefault(key, [])
        if len(values) >= _MAX_HEADER_VALUES:
            continue
        values.append(_header_text(key, str(raw_value), defects, charset))
    return {key: tuple(values) for key, values in headers.items()}, tuple(order)


def _header_text(key: str, raw_value: str, defects: list[str], charset: str | None) -> str:
    try:
        if key in UNSTRUCTURED:
            text = decode_header_value(raw_value, charset)
            if "\ufffd" in text:  # what no charset could read says nothing to a reader
                defects.append(f"header {key}: undecodable characters removed")
                text = " ".join(text.replace("\ufffd", " ").split())
            return text
        return " ".join(decode_8bit(raw_value, charset).split())
    except Exception:  # noqa: BLE001 - not expected; a header must never cost the message
        defects.append(f"header {key} could not be decoded")
        return " ".join(raw_value.split())


def _first(headers: dict[str, tuple[str, ...]], name: str) -> str:
    values = headers.get(name)
    return values[0] if values else ""


def _references(value: str) -> list[str]:
    found = _MSGID_RE.findall(value)
    return found if found else value.split()


def _addresses(
    msg: Message, name: str, defects: list[str], charset: str | None = None
) -> tuple[Address, ...]:
    """The addresses of every `name` header, by RFC 5322's grammar (core.addresses)."""
    return _as_addresses(_mailboxes(msg, name, defects, charset) or [])


def _as_addresses(mailboxes: Sequence[Mailbox]) -> tuple[Address, ...]:
    # A domain-less addr-spec alone ("To: root") is no one to list.
    return tuple(Address(m.name, m.address) for m in mailboxes if m.name or m.address)


def _mailboxes(
    msg: Message,
    name: str,
    defects: list[str],
    charset: str | None = None,
    *,
    topmost: bool = False,
) -> list[Mailbox] | None:
    """The mailboxes of every `name` header (of the first alone when `topmost`); None when
    the mail has no such header. Raw 8-bit bytes are read as `charset` first."""
    out: list[Mailbox] | None = None
    for raw_name, raw_value in islice(msg.raw_items(), MAX_HEADER_FIELDS):
        if raw_name.strip().lower() != name:
            continue
        found = parse_address_list(str(raw_value), charset)
        defects.extend(f"{raw_name} header: {defect}" for defect in found.defects)
        out = out if out is not None else []
        out.extend(found.mailboxes)
        if topmost:
            break
    return out


def _sender(
    msg: Message, reply_to: list[Mailbox], defects: list[str], charset: str | None
) -> SenderChoice:
    """From, else Sender, Reply-To or the topmost Return-Path (core.sender decides)."""
    from_ = _mailboxes(msg, "from", defects, charset)
    fallbacks: dict[str, Sequence[Mailbox]] = {"reply-to": reply_to}
    if not any(m.address for m in from_ or ()):  # the others are read only when needed
        fallbacks["sender"] = _mailboxes(msg, "sender", defects, charset) or []
        fallbacks["return-path"] = (
            _mailboxes(msg, "return-path", defects, charset, topmost=True) or []
        )
    choice = choose_sender(from_, fallbacks)
    defects.extend(choice.defects)
    return choice


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
