"""Raw mail written byte by byte, for values no well-behaved mail library would produce:
header lines of a megabyte, encoded NUL characters, undecodable 8-bit bytes, a Message-ID
longer than its column, HTML that takes seconds to convert."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence

from tests.support.builders import mail

CRLF = b"\r\n"
DATE = b"Mon, 23 Nov 2026 09:00:00 +0000"

# The mail beside each hostile one, in the same fetch batch: it must still become a ticket
# and be acknowledged.
ORDINARY_SENDER = "bea@customer.example"
ORDINARY = mail(
    sender=f"Bea Buyer <{ORDINARY_SENDER}>",
    subject="Where is my order 4711?",
    body="Hello,\nmy order has not arrived yet.\n\nBea\n",
    message_id="<order-4711@customer.example>",
)


def as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def raw_mail(
    headers: Sequence[tuple[str, str | bytes]],
    body: str | bytes = b"Hello.\r\n",
    *,
    sender: str | bytes = b"Ada Customer <ada@customer.example>",
    subject: str | bytes = b"Help",
    message_id: str | bytes | None = None,
    content_type: str | bytes = b"text/plain; charset=utf-8",
) -> bytes:
    """A single-part mail; `headers` come after the usual ones (and may repeat them)."""
    lines = [
        b"From: " + as_bytes(sender),
        b"To: support@shop.example",
        b"Subject: " + as_bytes(subject),
        b"Date: " + DATE,
        b"Message-ID: " + as_bytes(message_id or f"<{uuid.uuid4().hex}@customer.example>"),
        b"MIME-Version: 1.0",
        b"Content-Type: " + as_bytes(content_type),
    ]
    lines += [as_bytes(name) + b": " + as_bytes(value) for name, value in headers]
    return CRLF.join(lines) + CRLF + CRLF + as_bytes(body)


TEXT_PART = (b"Content-Type: text/plain; charset=utf-8", b"", b"Please see the attached file.")


def with_attachment(
    *,
    filename_param: bytes,
    content_type: bytes = b"application/pdf",
    extra: Sequence[bytes] = (),
    sender: bytes | None = None,
    message_id: bytes | None = None,
    subject: bytes = b"Help",
    text: Sequence[bytes] = TEXT_PART,
) -> bytes:
    """A mail with a text part (its header lines, a blank line, its body) and one
    attachment whose headers the caller writes."""
    boundary = b"==hostile-boundary=="
    parts = [
        b"--" + boundary,
        *text,
        b"--" + boundary,
        b"Content-Type: " + content_type,
        b"Content-Transfer-Encoding: base64",
        b"Content-Disposition: attachment; " + filename_param,
        *extra,
        b"",
        base64.b64encode(b"%PDF-1.4 pretend"),
        b"--" + boundary + b"--",
        b"",
    ]
    head = raw_mail(
        [],
        b"",
        sender=sender or b"Ada Customer <ada@customer.example>",
        message_id=message_id,
        subject=subject,
        content_type=b'multipart/mixed; boundary="' + boundary + b'"',
    )
    return head + CRLF.join(parts)


def encoded_word(text: str) -> bytes:
    """RFC 2047 base64 encoded word: how a NUL character reaches a header unseen."""
    return b"=?utf-8?b?" + base64.b64encode(text.encode("utf-8")) + b"?="


# A Message-ID longer than its column.
LONG_ID = "<" + "a" * 4980 + ".long-id@customer.example>"  # 5,006 characters

# The header block of Mallory's mail; % fills in its Subject and its Message-ID's left part.
HEAD = (
    b"From: Mallory <mallory@evil.example>\r\nTo: support@shop.example\r\n"
    b"Subject: %s\r\nMessage-ID: <%s@evil.example>\r\n"
    b"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
)


def slow_html(rows: int = 40_000) -> bytes:
    """Table rows (1.2 MB by default): the HTML converter needs several seconds for them,
    for real (about 5 µs a byte on a 2-core VM)."""
    html = b"<table>" + b"<tr><td>a</td><td>b</td></tr>" * rows + b"</table>"
    return (
        HEAD % (b"slow html", b"slow-html")
        + b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        + html
        + b"\r\n"
    )
