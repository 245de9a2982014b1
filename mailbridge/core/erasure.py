"""What erasing a person's data decides, as pure functions: the pseudonym an erased address
becomes, where an address stands in free text, what of an audit event's data survives an
erasure, and whether a mail we composed mentions an address.

The pseudonym is `erased-<id>@invalid`: the id is an HMAC of the address under a key only
the configuration holds (derived from the staff secret), so the same address always gets
the same pseudonym, and the database alone does not tell which address it was ("invalid"
is reserved by RFC 2606: nothing is ever delivered there).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from email import message_from_bytes
from email import policy as email_policy
from typing import Any

from mailbridge.core.mime_text import decode_bytes, decode_header_value

__all__ = [
    "ERASED",
    "KEPT_EVENT_TEXT",
    "address_pattern",
    "erased_message_id",
    "erasure_key",
    "is_pseudonym",
    "mail_mentions",
    "pseudonym",
    "pseudonym_id",
    "replace_address",
    "replace_in_json",
    "scrub_event_data",
]

ERASED = "[erased]"  # where text of a person's stood
PSEUDONYM_DOMAIN = "invalid"
_PSEUDONYM = re.compile(r"erased-[0-9a-f]{20}@invalid")
_ERASED_ID = re.compile(r"erased\.[0-9a-f]{24}@invalid")
_KEY_LABEL = b"mailbridge customer erasure v1"

# An address is another one when an address character touches it: "xann@shop.example" is
# not Ann's, nor is "ann@shop.example.org"; "<ann@shop.example>." is.
_BEFORE = r"(?<![\w.!#$%&'*+/=?^`{|}~-])"
_AFTER = r"(?![\w-]|\.[\w-])"

# Keys of an audit event whose text is about the ticket's handling (states, policies,
# rules, who acted, when), never what a mail said: they stay, with the erased address
# replaced by its pseudonym. Any other text (what the customer said, file names,
# Message-IDs, display names, staff command text) becomes ERASED. Numbers, booleans and
# nulls always stay: the reports count with them (docs/architecture.md, "Erasure").
KEPT_EVENT_TEXT = frozenset(
    {
        "actions", "added", "address", "assignee", "by", "check", "close_at",
        "closed_before", "content_type", "day", "deadline", "due_at", "due_from",
        "due_to", "file", "first_response_due_at", "folder", "form", "how", "kind",
        "mailbox", "new", "old", "original_sender", "participants_copied",
        "participants_moved", "pattern", "policy", "previous_policy", "priority",
        "priority_from", "priority_to", "proof", "queue", "queue_from", "queue_to",
        "reason", "reminded_at", "reminder_at", "removed", "requester",
        "resolution_due_at", "rule", "rules", "sla_policy", "source", "spam_before",
        "status", "status_from", "status_to", "tags", "tags_added", "tags_copied",
        "tags_moved", "tags_removed", "to", "until", "verdict", "via", "was", "was_until",
    }
)  # fmt: skip


def erasure_key(secret: bytes) -> bytes:
    """The key of pseudonyms, derived from the staff secret (never the secret itself, so a
    pseudonym tells nothing of reply tokens)."""
    return hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()


def pseudonym_id(key: bytes, address: str) -> str:
    """The stable, keyed id of an address (20 hex digits: 80 bits)."""
    return hmac.new(key, b"address\x00" + address.encode("utf-8"), hashlib.sha256).hexdigest()[:20]


def pseudonym(key: bytes, address: str) -> str:
    """`erased-<id>@invalid`: what the address becomes wherever it stood."""
    return f"erased-{pseudonym_id(key, address)}@{PSEUDONYM_DOMAIN}"


def is_pseudonym(address: str) -> bool:
    return _PSEUDONYM.fullmatch(address) is not None


def erased_message_id(key: bytes, message_id: str) -> str:
    """A Message-ID the erased mail's own becomes: stable (so copies of one mail still
    agree), unique as the original was, and telling nothing of it. An id made so already
    is kept."""
    if _ERASED_ID.fullmatch(message_id):
        return message_id
    digest = hmac.new(key, b"message-id\x00" + message_id.encode("utf-8"), hashlib.sha256)
    return f"erased.{digest.hexdigest()[:24]}@{PSEUDONYM_DOMAIN}"


def address_pattern(address: str) -> re.Pattern[str]:
    """The address wherever it stands in text, in any case, and not inside another one."""
    return re.compile(_BEFORE + re.escape(address) + _AFTER, re.IGNORECASE)


def replace_address(text: str, pattern: re.Pattern[str], replacement: str) -> str:
    return pattern.sub(replacement, text) if text else text


def replace_in_json(value: Any, pattern: re.Pattern[str], replacement: str) -> Any:
    """A JSON value with the address replaced in every string (keys left as they are:
    they are ours)."""
    if isinstance(value, str):
        return replace_address(value, pattern, replacement)
    if isinstance(value, list):
        return [replace_in_json(item, pattern, replacement) for item in value]
    if isinstance(value, dict):
        return {key: replace_in_json(item, pattern, replacement) for key, item in value.items()}
    return value


def scrub_event_data(
    data: Mapping[str, Any], pattern: re.Pattern[str] | None, replacement: str
) -> dict[str, Any]:
    """An audit event's data with the content of mail taken out: text under a key not in
    KEPT_EVENT_TEXT becomes ERASED (in lists and nested objects too), and with `pattern`,
    the address becomes `replacement` in the text that stays."""
    return {key: _scrubbed(key, value, pattern, replacement) for key, value in data.items()}


def _scrubbed(key: str, value: Any, pattern: re.Pattern[str] | None, replacement: str) -> Any:
    if isinstance(value, str):
        if key not in KEPT_EVENT_TEXT:
            return ERASED if value else value
        return replace_address(value, pattern, replacement) if pattern else value
    if isinstance(value, list):
        return [_scrubbed(key, item, pattern, replacement) for item in value]
    if isinstance(value, dict):
        # An object under a kept key is described by its own keys ({"file": …, "score": …}).
        return {k: _scrubbed(k, item, pattern, replacement) for k, item in value.items()}
    return value


def mail_mentions(raw: bytes, pattern: re.Pattern[str], tags: frozenset[str] = frozenset()) -> bool:
    """Whether a mail mentions the address (`pattern`) or one of the ticket `tags`
    ("[#1042]"): in its bytes as they are, in its headers decoded (RFC 2047), or in its
    text parts decoded (quoted-printable may break a line inside an address, base64 hides
    it). For mail mailbridge composed: hostile mail is searched in its bytes only, by the
    caller, and never parsed outside the parse worker."""
    if not raw:
        return False
    if _names(raw.decode("latin-1"), pattern, tags):
        return True
    message = message_from_bytes(raw, policy=email_policy.compat32)
    for part in message.walk():
        for _name, value in part.items():
            if _names(decode_header_value(str(value)), pattern, tags):
                return True
        if part.is_multipart() or part.get_content_maintype() not in ("text", "message"):
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            text, _charset = decode_bytes(payload, part.get_content_charset())
            if _names(text, pattern, tags):
                return True
    return False


# Whatever stands in brackets on one line: a tag is looked up among them, which is linear
# in the text whatever the number of tags (an alternation of a thousand tags is not).
_BRACKETED = re.compile(r"\[[^\[\]\r\n]{1,64}\]")


def recipe_mentions(
    recipe: Mapping[str, Any] | None, pattern: re.Pattern[str], tags: frozenset[str] = frozenset()
) -> bool:
    """Whether a mail still to be rendered (outbound/render.py) mentions the address or a
    tag: in any of its values or headers, which are plain JSON data."""
    if not recipe:
        return False
    return _names(json.dumps(recipe, ensure_ascii=False), pattern, tags)


def _names(text: str, pattern: re.Pattern[str], tags: frozenset[str]) -> bool:
    if pattern.search(text):
        return True
    return bool(tags) and any(m.group(0) in tags for m in _BRACKETED.finditer(text))
