"""The walk over a parsed MIME tree: body text, HTML and attachments, within size limits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from email import policy
from email.message import Message

from mailbridge.core.attachment_names import location_name, part_filename
from mailbridge.core.message import Attachment, ParseLimits
from mailbridge.core.mime_text import decode_bytes, decode_header_value
from mailbridge.core.safe_text import safe_filename
from mailbridge.core.tnef import is_tnef, unpack_tnef

_MSGID_RE = re.compile(r"<([^<>\s]+)>")
_MAX_NESTING = 5  # forwarded mail inside forwarded mail: deeper levels stay inside the .eml
_NO_LIMITS = ParseLimits()
_TNEF_CONTAINER = "winmail.dat"


@dataclass(slots=True)
class Body:
    """What the walk over the MIME tree collects."""

    limits: ParseLimits = _NO_LIMITS
    # Why every attachment payload is dropped (the message is over its limit), or None.
    skip_all: str | None = None
    depth: int = 0  # levels of message/rfc822 above this walk
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    # Bodies found inside winmail.dat: used only when the message has no text of its own.
    tnef_text: list[str] = field(default_factory=list)
    tnef_html: list[str] = field(default_factory=list)


def walk(part: Message, body: Body, *, in_related: bool = False) -> None:
    """Collect `part` and everything below it into `body`."""
    content_type = part.get_content_type()
    if content_type.startswith("message/") and content_type != "message/rfc822":
        # delivery-status and friends parse as header blocks; they are data, not body
        body.attachments.append(_message_part(part, content_type, body))
        return
    if part.get_payload() is None and content_type.startswith(("multipart/", "message/")):
        return  # reading stopped at a cap before this part's contents (a defect says so)
    if part.is_multipart() and content_type != "message/rfc822":
        related = in_related or content_type == "multipart/related"
        for child in part.get_payload():
            if isinstance(child, Message):
                walk(child, body, in_related=related)
        return
    if content_type == "message/rfc822":
        _attached_message(part, body)
        return
    disposition = part.get_content_disposition()
    filename = part_filename(part, body.defects)
    is_body_text = content_type in ("text/plain", "text/html") and (
        disposition != "attachment" and filename is None
    )
    if is_body_text:
        text = _part_text(part, body)
        (body.plain if content_type == "text/plain" else body.html).append(text)
        return
    # "" until core.attachment_names.name_unnamed names it after the walk
    _attachment(part, filename or location_name(part) or "", disposition, in_related, body)


def limited(body: Body, data: bytes, size: int) -> tuple[bytes, str | None]:
    """(payload to keep, why it was skipped or None) under the limits of `body`."""
    if body.skip_all is not None:
        return b"", body.skip_all
    cap = body.limits.max_attachment_bytes
    if cap is not None and size > cap:
        return b"", f"attachment over the size limit of {cap} bytes"
    return data, None


def _part_text(part: Message, body: Body) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    text, note = decode_bytes(data, part.get_content_charset())
    if note:
        body.defects.append(f"{part.get_content_type()}: {note}")
    return text.replace("\r\n", "\n")


def _attachment(
    part: Message, filename: str, disposition: str | None, in_related: bool, body: Body
) -> None:
    content_type = part.get_content_type()
    # TNEF is unpacked whatever its size: the limits then apply to the files inside.
    named_tnef = is_tnef(content_type, filename, b"")
    data, size = _payload(part, body, decode=named_tnef)
    if data is not None and (named_tnef or is_tnef(content_type, filename, data)):
        _tnef(data, filename, body)
        return
    content_id = message_id(str(part.get("content-id", "") or ""))
    inline = (disposition == "inline" and content_id is not None) or (
        in_related and not content_type.startswith("text/")
    )
    kept, reason = limited(body, data or b"", size)
    body.attachments.append(
        Attachment(filename, content_type, size, inline, content_id, kept, reason)
    )


def _payload(part: Message, body: Body, *, decode: bool) -> tuple[bytes | None, int]:
    """(decoded bytes, or None when they will not be kept and `decode` is False; size)."""
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    raw = part.get_payload()
    if not decode and encoding == "base64" and isinstance(raw, str):
        # The size follows from the encoded text: a part that is over the limit is
        # never decoded, so a 20 MB attachment costs no 20 MB copy to skip.
        size = _base64_size(raw)
        if limited(body, b"", size)[1] is not None:
            return None, size
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else _as_bytes(part)
    return data, len(data)


def _base64_size(text: str) -> int:
    chars = len(text) - sum(text.count(ch) for ch in "\r\n\t ")
    padding = len(text.rstrip()) - len(text.rstrip().rstrip("="))
    return max(chars * 3 // 4 - padding, 0)


def _tnef(data: bytes, filename: str, body: Body) -> None:
    """winmail.dat is replaced by what it holds: the files a user can open, and its body.

    When it cannot be unpacked it stays an attachment, so nothing is lost.
    """
    content = unpack_tnef(data, body.limits)
    body.defects.extend(content.defects)
    if not content.files and not content.text and not content.html:
        kept, reason = limited(body, data, len(data))
        name = filename or _TNEF_CONTAINER
        body.attachments.append(
            Attachment(name, "application/ms-tnef", len(data), False, None, kept, reason)
        )
        return
    container = filename or _TNEF_CONTAINER
    for item in content.files:
        kept, reason = limited(body, item.data, len(item.data))
        body.attachments.append(
            Attachment(
                safe_filename(item.filename or ""), item.content_type, len(item.data), False,
                None, kept, reason, container,
            )
        )  # fmt: skip
    if content.text:
        body.tnef_text.append(content.text)
    if content.html:
        body.tnef_html.append(content.html)


def _attached_message(part: Message, body: Body) -> None:
    """A forwarded mail stays one .eml; its own files are listed beside it as well,
    named as they were and marked with the .eml as their container."""
    inner = part.get_payload()
    inner_msg = inner[0] if isinstance(inner, list) and inner else None
    data = _as_bytes(inner_msg) if isinstance(inner_msg, Message) else _as_bytes(part)
    filename = part_filename(part, body.defects) or location_name(part)
    if not filename:
        subject = ""
        if isinstance(inner_msg, Message):
            subject = decode_header_value(str(inner_msg.get("subject", "") or ""))
        filename = f"{_safe_name(subject) or 'message'}.eml"
    kept, reason = limited(body, data, len(data))
    body.attachments.append(
        Attachment(filename, "message/rfc822", len(data), False, None, kept, reason)
    )
    if isinstance(inner_msg, Message) and body.depth < _MAX_NESTING:
        body.attachments.extend(_inner_files(inner_msg, filename, body))


def _inner_files(inner: Message, container: str, body: Body) -> list[Attachment]:
    nested = Body(limits=body.limits, skip_all=body.skip_all, depth=body.depth + 1)
    try:
        walk(inner, nested)
    except Exception as exc:  # noqa: BLE001 - the .eml itself is kept; only the listing is lost
        body.defects.append(f"attached message could not be read: {exc!r}")
        return []
    # Inline images and unnamed parts belong to the forwarded mail's body, not its files
    # (unnamed parts are named only after the walk of the whole message).
    return [
        att if att.container else replace(att, container=container)
        for att in nested.attachments
        if att.filename and not att.inline
    ]


def _message_part(part: Message, content_type: str, body: Body) -> Attachment:
    payload = part.get_payload()
    if isinstance(payload, list):
        data = b"".join(_as_bytes(block) for block in payload if isinstance(block, Message))
    else:
        data = str(payload).encode("utf-8", "surrogateescape")
    kept, reason = limited(body, data, len(data))
    filename = part_filename(part, body.defects) or location_name(part) or ""
    return Attachment(filename, content_type, len(data), False, None, kept, reason)


def message_id(value: str) -> str | None:
    """A Message-ID or Content-ID without angle brackets, or None when there is none."""
    match = _MSGID_RE.search(value)
    if match:
        return match.group(1)
    bare = value.strip().strip("<>").strip()
    return bare.split()[0] if bare else None


def _safe_name(subject: str) -> str:
    return re.sub(r"[\\/:*?\"<>|\x00-\x1f]+", "_", subject).strip(" ._")[:120]


def _as_bytes(part: Message) -> bytes:
    try:
        return part.as_bytes(policy=policy.compat32)
    except Exception:  # noqa: BLE001 - a part that cannot be re-serialised still has a size of zero
        return b""
