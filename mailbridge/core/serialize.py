"""The JSON shape of a parsed and classified message, as `mailbridge parse` prints it."""

from __future__ import annotations

from typing import Any

from mailbridge.core.message import Address, Attachment, ParsedMessage, Verdict


def _address(address: Address) -> dict[str, str]:
    return {"name": address.name, "address": address.address}


def _attachment(attachment: Attachment) -> dict[str, Any]:
    return {
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "inline": attachment.inline,
        # Why the payload was not kept (over a size limit), or null.
        "skipped_reason": attachment.skipped_reason,
        # The .eml or winmail.dat this file was unpacked from, or null.
        "container": attachment.container,
    }


def parsed_to_json(msg: ParsedMessage, verdict: Verdict) -> dict[str, Any]:
    """A JSON-ready dict with the keys `mailbridge parse` promises (docs/architecture.md,
    "The command line")."""
    return {
        "message_id": msg.message_id,
        "from": _address(msg.from_) if msg.from_ else None,
        # The header "from" came from: "from", "sender", "reply-to", "return-path" or "".
        "sender_header": msg.sender_header,
        "to": [_address(a) for a in msg.to],
        "cc": [_address(a) for a in msg.cc],
        "reply_to": [_address(a) for a in msg.reply_to],
        "subject": msg.subject,
        "date": msg.date.isoformat() if msg.date else None,
        "in_reply_to": msg.in_reply_to,
        "references": list(msg.references),
        "text": msg.text,
        "reply_text": msg.reply_text,
        "has_html": msg.html is not None,
        "attachments": [_attachment(a) for a in msg.attachments],
        "kind": verdict.kind,
        "rules": list(verdict.rules),
        "ack_withheld_by": list(verdict.ack_withheld_by),
        "language": msg.language,
        "defects": list(msg.defects),
    }
