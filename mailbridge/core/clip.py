"""Template values cut to sizes a mail can carry, with a visible mark where text was cut.

Every value a template sees may come from a stranger's mail: a 2 MB subject, a 3 MB body,
100,000 attachments. The template sandbox stops any render whose values or output pass
1,000,000 characters, which would leave the ticket without its acknowledgement and
notification. So the values are shortened once, here, before every render: the mail goes
out shortened, and says so, rather than not at all. With these limits the largest render
of the shipped templates stays far below the sandbox's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mailbridge.core.readable import readable


@dataclass(frozen=True, slots=True)
class _Words:
    shortened: str  # appended where text was cut
    more: str  # the last entry of a shortened list, with {count}
    list_shortened: str
    thousands: str  # the separator in 49,901


_WORDS = {
    "en": _Words("[… shortened]", "… and {count} more", "list shortened", ","),
    "it": _Words("[… testo abbreviato]", "… e altri {count}", "elenco abbreviato", "."),
}

# Characters of each top-level value; other strings get DEFAULT_TEXT.
TEXT_LIMITS = {
    "subject": 300,  # fits, marker included, in a subject line of 400 (core.compose)
    "requester_name": 100,
    "requester_address": 320,
    "staff_name": 100,
    "excerpt": 20_000,  # the customer's text in a notification
    "reply_text": 100_000,  # a staff member's answer, relayed to the customer
}
DEFAULT_TEXT = 1_000
CUSTOMER_TEXT = frozenset({"subject", "requester_name", "excerpt"})
# Entries of each list (and of the links dict); the producers keep digest and faq within
# these already (staff.digest_articles, faq.suggestions).
LIST_LIMITS = {
    "attachments": 100,
    "digest": 20,
    "faq": 3,
    "errors": 20,
    "links": 20,
    "unread": 20,
    "participants": 50,  # core.participants.MAX_ACTIVE
    "queue_digest": 100,  # tickets in one daily digest, overdue first (core/digest.py)
}
DEFAULT_ITEMS = 20
# Characters of the strings inside list entries, by their key.
ENTRY_LIMITS = {
    "text": 2_000,
    "answer": 5_000,
    "title": 300,
    "filename": 200,
    "author": 200,
    "file": 200,
    "size": 50,
    "at": 50,
    "direction": 10,
    "name": 100,
    "address": 320,
    "group": 20,
    "line": 600,  # core.digest.format_line keeps within this
    "reply": 4_000,  # a mailto: URL is never cut (core.digest.LINK_SUBJECT_CHARS)
}
ERROR_LIMIT = 500


def clip_text(text: str, limit: int, language: str = "en") -> str:
    """text, or its first `limit` characters (at a word boundary when one is near) and the
    shortened marker."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    space = max(head.rfind(" "), head.rfind("\n"))
    if space > limit * 4 // 5:
        head = head[:space]
    return f"{head.rstrip()} {_words(language).shortened}"


def clip_context(context: Mapping[str, object], language: str) -> dict[str, object]:
    """A copy of a template context with every value within its limit, and the customer's
    words readable (core.readable): a subject, name or excerpt that shows the marks of a
    wrong decoding is repaired or left out, so the template says only the ticket number."""
    clipped: dict[str, object] = {}
    for key, value in context.items():
        if isinstance(value, str):
            clipped[key] = clip_text(value, TEXT_LIMITS.get(key, DEFAULT_TEXT), language)
            if key in CUSTOMER_TEXT:
                clipped[key] = readable(str(clipped[key])) or ""
        elif isinstance(value, list | tuple):
            clipped[key] = _clip_list(key, value, language)
        elif isinstance(value, Mapping):
            kept = list(value.items())[: LIST_LIMITS.get(key, DEFAULT_ITEMS)]
            clipped[key] = {k: _clip_value(v, DEFAULT_TEXT, language) for k, v in kept}
        else:
            clipped[key] = value
    return clipped


def _clip_list(key: str, items: list[object] | tuple[object, ...], language: str) -> list[object]:
    """The first entries of a list; past its limit, an entry saying how many more there are."""
    limit = LIST_LIMITS.get(key, DEFAULT_ITEMS)
    kept = [_clip_entry(item, language) for item in items[:limit]]
    if len(items) > limit:
        kept.append(_more(key, len(items) - limit, language))
    return kept


def _clip_entry(item: object, language: str) -> object:
    if isinstance(item, Mapping):
        return {
            k: _clip_value(v, ENTRY_LIMITS.get(k, DEFAULT_TEXT), language) for k, v in item.items()
        }
    return _clip_value(item, ERROR_LIMIT, language)


def _clip_value(value: object, limit: int, language: str) -> object:
    return clip_text(value, limit, language) if isinstance(value, str) else value


def _more(key: str, count: int, language: str) -> object:
    """The entry that ends a shortened list: read by the templates like the others."""
    words = _words(language)
    more = words.more.format(count=f"{count:,}".replace(",", words.thousands))
    if key == "attachments":  # "  - … and 49,900 more (list shortened)"
        return {"filename": more, "size": words.list_shortened, "attached": True}
    if key == "digest":  # never reached with staff.digest_articles at most 20
        return {"author": more, "at": "", "direction": "in", "text": words.list_shortened}
    if key == "queue_digest":  # "… and 30 more (list shortened)", no link
        return {"group": "more", "line": f"{more} ({words.list_shortened})", "reply": ""}
    if key == "faq":  # never reached with faq.suggestions at most 3
        return {"title": more, "answer": words.list_shortened, "file": "", "score": 0.0}
    return f"{more} ({words.list_shortened})"


def _words(language: str) -> _Words:
    return _WORDS.get(language.strip().lower().replace("_", "-").split("-")[0], _WORDS["en"])
