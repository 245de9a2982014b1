"""Build outbound mail as RFC 5322 bytes from plain values, without IO or the clock.

Customer-controlled text reaches headers here (subjects, display names), so every header
value is cleaned of control characters, encoded (RFC 2047) and folded by this module.
The same Outgoing always yields the same bytes: MIME boundaries derive from the
Message-ID, so a retried send is byte-for-byte the mail that was stored.

The message is written out directly (headers folded here, text bodies quoted-printable
through `email.quoprimime`) rather than assembled as an `EmailMessage`: the email
package's header objects and generator cost more than all the rest of an acknowledgement.
Only the headers of attachments go through `EmailMessage`, for their RFC 2231 parameters.
The bytes are those the email package wrote for the same message before.
"""

from __future__ import annotations

import binascii
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email import base64mime, policy, quoprimime
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache

from mailbridge.core.message import Address, Attachment
from mailbridge.core.safe_text import clean_header_text, safe_filename

_POLICY = policy.SMTP

# Roots of the thread plus its most recent ids: enough to thread, bounded for long tickets.
MAX_REFERENCES = 10

# Headers build_message writes itself; extra_headers may not set them.
_MANAGED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "auto-submitted",
        "mime-version",
        "sender",
        "return-path",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "content-id",
    }
)
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext
_ID_PART = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+"  # dot-atom-text, loosely
_MSG_ID = re.compile(rf"{_ID_PART}@(?:{_ID_PART}|\[[!-Z^-~]*\])")
# Our Message-IDs start with this, so mail of ours coming back is recognised (classify).
MESSAGE_ID_PREFIX = "mb."
_UNIQUE = re.compile(r"[A-Za-z0-9_.+=-]+")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_MAX_ID_LENGTH = 250
_MAX_TEXT = 400  # characters of a subject or other free-text header
_MAX_NAME = 80  # characters of a display name
_MAX_TYPE_NAME = 127  # characters of a media type's type or subtype (RFC 6838)
_LINE = 78  # RFC 5322's recommended line length
_EW_LENGTH = 64  # of one encoded word: under RFC 2047's 75, leaving room for a header name
_TOKEN = re.compile(r"\S+\s*")  # a word and the space after it
_EW_OVERHEAD = len("=?utf-8?b??=")
_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_ATEXT_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~-"
)
# dot-atom@dot-atom, which the email package's parser accepts and returns unchanged.
_PLAIN_ADDRESS = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")  # a phrase that needs no quoting
_REPLY_PREFIX = re.compile(
    r"^(?:\s*(?:re|fwd?|aw|wg|sv|vs|antw|rif|r|i|tr)\s*(?:\[\d+\])?\s*:)+\s*", re.IGNORECASE
)
_CRLF = "\r\n"
_QP_LINE = 78  # the line length policy.SMTP gives quoted-printable bodies
_B64_LINE = _QP_LINE // 4 * 4  # base64 lines: whole groups of 4 within that length


@dataclass(frozen=True)
class Outgoing:
    """One mail to send. Ids are without angle brackets."""

    from_: Address
    to: tuple[Address, ...]
    subject: str
    text: str
    html: str | None
    message_id: str
    cc: tuple[Address, ...] = ()  # written as the Cc header; each checked like To
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    auto_submitted: str | None = None  # RFC 3834: "auto-replied", "auto-generated"
    reply_to: tuple[Address, ...] = ()
    extra_headers: tuple[tuple[str, str], ...] = ()
    attachments: tuple[Attachment, ...] = ()
    date: datetime | None = None  # the MSA adds a Date when this is None


def make_message_id(domain: str, unique: str) -> str:
    """A Message-ID (without brackets) that depends only on its inputs, so retries keep it."""
    if not _UNIQUE.fullmatch(unique) or not _DOMAIN.fullmatch(domain):
        raise ValueError(f"cannot make a Message-ID from {unique!r} and {domain!r}")
    return f"{MESSAGE_ID_PREFIX}{unique}@{domain.lower()}"


def tag_subject(subject: str, tag: str) -> str:
    """The subject carrying tag exactly once, after any "Re:"-style prefixes."""
    tag = clean_header_text(tag)
    subject = clean_header_text(subject)
    if not tag:
        return subject
    first = subject.find(tag)
    if first >= 0:
        # Keep the first occurrence where the customer's client put it; drop repeats.
        rest = subject[first + len(tag) :].replace(tag, "")
        return clean_header_text(subject[: first + len(tag)] + rest)
    prefix = _REPLY_PREFIX.match(subject)
    head = subject[: prefix.end()] if prefix else ""
    return clean_header_text(f"{head}{tag} {subject[len(head) :]}")


def build_message(out: Outgoing) -> bytes:
    """The complete mail as bytes with CRLF line endings, ready for SMTP DATA.

    Raises ValueError when a value cannot be written safely: an address or Message-ID
    that is not valid, a naive date, or an extra header that would override one of ours.
    """
    if not out.to:
        raise ValueError("a message needs at least one recipient")
    head = [_address_header("From", (out.from_,)), _address_header("To", out.to)]
    if out.cc:
        head.append(_address_header("Cc", out.cc))
    if out.reply_to:
        head.append(_address_header("Reply-To", out.reply_to))
    head.append(_text_header("Subject", out.subject))
    if out.date is not None:
        if out.date.tzinfo is None:
            raise ValueError("the Date header needs an aware datetime")
        head.append(f"Date: {format_datetime(out.date)}{_CRLF}")
    head.append(_id_header("Message-ID", (_own_id(out.message_id),)))
    head.extend(_threading(out.in_reply_to, out.references))
    if out.auto_submitted is not None:
        head.append(_text_header("Auto-Submitted", out.auto_submitted))
    for name, value in out.extra_headers:
        if not _FIELD_NAME.fullmatch(name) or name.lower() in _MANAGED_HEADERS:
            raise ValueError(f"extra header {name!r} is not allowed")
        head.append(_text_header(name, value))
    # Every header is ASCII by now (encoded words, checked addresses, checked ids) except an
    # internationalised address, which RFC 6532 writes as UTF-8: such a mail goes only to a
    # server that offers SMTPUTF8 (adapters.smtp).
    return "".join(head).encode("utf-8") + _body(out)


def limit_references(ids: tuple[str, ...]) -> tuple[str, ...]:
    """At most MAX_REFERENCES ids: the thread's root and the most recent ones."""
    unique = tuple(dict.fromkeys(ids))
    if len(unique) <= MAX_REFERENCES:
        return unique
    return unique[:1] + unique[-(MAX_REFERENCES - 1) :]


def _fold(name: str, pieces: list[tuple[str, str]]) -> str:
    """One header line, folded by us rather than by the email package.

    Python 3.11's folder can split RFC 2047 encoded words so that decoders lose spaces or
    reject the header (CPython gh-144156), and it turns long msg-ids into encoded words,
    which no client would match. Folding is simple when the pieces are known: break only
    between pieces (separator, word), never inside one.
    """
    lines = [f"{name}:"]
    for separator, word in pieces:
        too_long = len(lines[-1]) + len(separator) + len(word) > _LINE
        if too_long and (len(lines) > 1 or lines[0] != f"{name}:"):
            lines[-1] += separator.rstrip(" ")
            lines.append(" " + word)
        else:
            lines[-1] += separator + word
    return _CRLF.join(lines) + _CRLF


def _encoded_words(text: str) -> list[str]:
    """RFC 2047 encoded words for text, each ending after a space so no word is cut in two.

    The spaces stay inside the encoded words: decoders drop the whitespace between them.
    """
    words: list[str] = []
    chunk, size, q_size = "", 0, 0  # the chunk's UTF-8 length and its Q-encoded length
    for token in _TOKEN.findall(text):
        raw = token.encode("utf-8")
        new_size, new_q = size + len(raw), q_size + quoprimime.header_length(raw)
        # Header.encode picks the shorter of B and Q; both lengths add up word by word, so
        # the chunk need not be encoded again for every word (quadratic in long subjects).
        if chunk and _EW_OVERHEAD + min(4 * -(-new_size // 3), new_q) > _EW_LENGTH:
            words.extend(_encode(chunk, size, q_size))
            chunk, new_size, new_q = "", len(raw), quoprimime.header_length(raw)
        chunk += token
        size, q_size = new_size, new_q
    return words + _encode(chunk, size, q_size) if chunk else words


def _encode(text: str, size: int, q_size: int) -> list[str]:
    """text as one encoded word, B or Q, whichever is shorter (Q when equal), as
    email.header chooses; a single word too long for one goes to email.header to be cut."""
    b_size = 4 * -(-size // 3)
    if _EW_OVERHEAD + min(b_size, q_size) > _EW_LENGTH:
        return Header(text, "utf-8").encode(linesep="\n", maxlinelen=_EW_LENGTH).split()
    raw = text.encode("utf-8")
    if b_size < q_size:
        return [base64mime.header_encode(raw, "utf-8")]
    return [quoprimime.header_encode(raw, "utf-8")]


def _text_header(name: str, value: str) -> str:
    text = clean_header_text(value)[:_MAX_TEXT]
    words = text.split(" ") if text.isascii() and "=?" not in text else _encoded_words(text)
    return _fold(name, [(" ", word) for word in words if word])


def _id_header(name: str, ids: tuple[str, ...]) -> str:
    return _fold(name, [(" ", f"<{i}>") for i in ids])


def can_write_address(address: str) -> bool:
    """Can build_message put this address in a header (ASCII, or RFC 6531 UTF-8)?"""
    try:
        _addr_spec(address)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1024)
def _addr_spec(address: str) -> str:
    """The address as written in a header; checked by the email package's parser, or, for
    an internationalised address, by _international."""
    spec = clean_header_text(address)
    if _PLAIN_ADDRESS.fullmatch(spec):
        return spec
    if not spec.isascii():
        if _international(spec):
            return spec
        raise ValueError(f"invalid address {spec!r}")
    try:
        return HeaderAddress(addr_spec=spec).addr_spec
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise ValueError(f"invalid address {spec!r}") from exc


def _international(spec: str) -> bool:
    """dot-atom@domain of RFC 6531: atext extended by any UTF-8 character that is a letter,
    mark, number, symbol or punctuation (never a control, space, format character or the
    U+FFFD of undecodable bytes); domain labels of letters, marks, digits and hyphens."""
    local, at, domain = spec.rpartition("@")
    if not at or not local or not domain:
        return False
    labels = domain.split(".")
    return all(atom and all(_atext(ch) for ch in atom) for atom in local.split(".")) and all(
        label
        and not label.startswith("-")
        and not label.endswith("-")
        and all(_label_char(ch) for ch in label)
        for label in labels
    )


def _atext(ch: str) -> bool:
    if ch.isascii():
        return ch in _ATEXT_CHARS
    return ch != "\ufffd" and unicodedata.category(ch)[0] in "LMNSP"


def _label_char(ch: str) -> bool:
    if ch.isascii():
        return ch.isalnum() or ch == "-"
    return unicodedata.category(ch)[0] in "LMN"


def _address_words(address: Address) -> list[str]:
    spec = _addr_spec(address.address)
    name = clean_header_text(address.name)[:_MAX_NAME].strip()
    if not name:
        return [spec]
    if not name.isascii() or "=?" in name:
        return [*_encoded_words(name), f"<{spec}>"]
    if not _ATOMS.fullmatch(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return [name, f"<{spec}>"]


def _address_header(name: str, addresses: tuple[Address, ...]) -> str:
    pieces: list[tuple[str, str]] = []
    for address in addresses:
        for index, word in enumerate(_address_words(address)):
            pieces.append((", " if pieces and index == 0 else " ", word))
    return _fold(name, pieces)


def _own_id(message_id: str) -> str:
    if len(message_id) > _MAX_ID_LENGTH or not _MSG_ID.fullmatch(message_id):
        raise ValueError(f"invalid Message-ID {message_id!r}")
    return message_id


def _foreign_id(value: str) -> str | None:
    """An id taken from someone else's mail, or None when it cannot be written safely."""
    candidate = clean_header_text(value).strip("<>")
    if len(candidate) > _MAX_ID_LENGTH or not _MSG_ID.fullmatch(candidate):
        return None
    return candidate


def _threading(in_reply_to: str | None, refs: tuple[str, ...]) -> list[str]:
    headers = []
    parent = _foreign_id(in_reply_to) if in_reply_to is not None else None
    ids = tuple(i for i in (_foreign_id(r) for r in refs) if i is not None)
    if parent is not None:
        headers.append(_id_header("In-Reply-To", (parent,)))
        # RFC 5322 3.6.4: References ends with the parent's id.
        ids = tuple(i for i in ids if i != parent) + (parent,)
    if ids:
        headers.append(_id_header("References", limit_references(ids)))
    return headers


def _boundary(message_id: str, level: str) -> str:
    # "=_" cannot occur in quoted-printable or base64 content, so this boundary never
    # collides with a body, whatever a customer writes into it.
    digest = hashlib.sha256(f"{message_id}/{level}".encode()).hexdigest()[:32]
    return f"=_mb_{level}_{digest}"


def _text_part(content: str, subtype: str) -> str:
    """Headers and quoted-printable body of a UTF-8 text part, as `set_content` writes them."""
    # Line breaks of any kind become one "\n" first, as in email.contentmanager.
    lines = content.encode("utf-8").splitlines()
    body = quoprimime.body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), _QP_LINE)
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"{_CRLF}'
        f"Content-Transfer-Encoding: quoted-printable{_CRLF}{_CRLF}" + body.replace("\n", _CRLF)
    )


def _multipart(subtype: str, boundary: str, parts: list[str]) -> str:
    """A multipart entity: its Content-Type (folded: the boundary never fits on one line)
    and its parts, each after a delimiter line, then the close delimiter."""
    delimited = f"{_CRLF}--{boundary}{_CRLF}".join(parts)
    return (
        f'Content-Type: multipart/{subtype};{_CRLF} boundary="{boundary}"{_CRLF}{_CRLF}'
        f"--{boundary}{_CRLF}{delimited}{_CRLF}--{boundary}--{_CRLF}"
    )


def _attachment_part(attachment: Attachment) -> str:
    """The headers and body of one attachment. Its type, name and Content-ID come from
    someone's mail: each is checked and bounded, so no header line outgrows what SMTP
    servers take (998 octets)."""
    maintype, _, subtype = attachment.content_type.lower().partition("/")
    # multipart/* and message/* cannot be set from bytes; sent as opaque data instead.
    valid = all(_FIELD_NAME.fullmatch(t) and len(t) <= _MAX_TYPE_NAME for t in (maintype, subtype))
    if not valid or maintype in ("multipart", "message"):
        maintype, subtype = "application", "octet-stream"
    # Only the final path component: a name like "../../x" means nothing to a reader.
    filename = safe_filename(attachment.filename)
    cid = _foreign_id(attachment.content_id) if attachment.content_id else None
    part = EmailMessage(policy=_POLICY)
    part.set_content(  # the headers; the body, which they do not depend on, follows
        b"",
        maintype=maintype,
        subtype=subtype,
        disposition="inline" if attachment.inline else "attachment",
        filename=filename or None,
        cid=f"<{cid}>" if cid else None,
    )
    del part["MIME-Version"]
    # RFC 2047/2231-encoded parameters: ASCII throughout.
    return part.as_string() + _base64_lines(attachment.payload)


def _base64_lines(data: bytes) -> str:
    """base64 in lines of 76 characters, as set_content writes it under policy.SMTP, in
    one pass instead of one call per line."""
    encoded = binascii.b2a_base64(data, newline=False).decode("ascii")
    return "".join(encoded[i : i + _B64_LINE] + _CRLF for i in range(0, len(encoded), _B64_LINE))


def _body(out: Outgoing) -> bytes:
    """Everything after the message's own headers: the MIME headers, a blank line, the body."""
    text = _text_part(out.text, "plain")
    if out.html is None and not out.attachments:
        headers, _, body = text.partition(_CRLF + _CRLF)
        return f"{headers}{_CRLF}MIME-Version: 1.0{_CRLF}{_CRLF}{body}".encode("ascii")
    content = text
    if out.html is not None:
        alternative = [text, _text_part(out.html, "html")]
        content = _multipart("alternative", _boundary(out.message_id, "alt"), alternative)
    if out.attachments:
        parts = [content, *(_attachment_part(a) for a in out.attachments)]
        content = _multipart("mixed", _boundary(out.message_id, "mixed"), parts)
    return f"MIME-Version: 1.0{_CRLF}{content}".encode("ascii")
