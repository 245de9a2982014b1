"""Spam: whose mail is spam, by the lists and the filter's verdict. Pure functions.

Three sources say a sender's mail is spam or not, and they rank (docs/architecture.md,
"Spam"): the allowlist beats the blocklist, which beats the verdict of the mail server's
filter. An allowed sender's mail is never spam by the lists or the verdict; a blocked
sender's always is; anyone else's is spam when the trusted filter says so
(the filter verdict is read from its headers). Routing rules see the result as `when.spam` and may
still decide for themselves (`then.spam`, `then.ignore`).

A pattern is an address ("a@x.example"), a domain ("x.example": it and its subdomains), or
a shell-style glob over the address ("*@spam.example", "noreply@*"), all compared in
lower case.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

__all__ = [
    "FilterVerdict",
    "Judgement",
    "first_match",
    "judge",
    "normalize_pattern",
    "pattern_matches",
]

PATTERN_LIMIT = 320  # as long as an address can be stored
_GLOB = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class FilterVerdict:
    """What the mail server's filter said of one mail, read from a header it added."""

    source: str  # "spamassassin" | "rspamd" | "exchange"
    spam: bool
    score: float | None = None
    detail: str = ""  # what the decision rests on, for the audit: "score=7.2 required=5"


@dataclass(frozen=True, slots=True)
class Judgement:
    """Whether a mail is spam before the rules look, and why (for the event and the log)."""

    spam: bool
    reason: str = ""  # "allowlist: *@partner.example", "blocklist: …", "rspamd: …"
    allowed: bool = False  # the allowlist holds the sender: nothing else counted


NOT_SPAM = Judgement(spam=False)


def normalize_pattern(text: str) -> str:
    """A block or allow pattern as stored and compared; ValueError says what was expected."""
    pattern = text.strip().lower()
    if not pattern or len(pattern) > PATTERN_LIMIT or any(c.isspace() for c in pattern):
        raise ValueError(
            f'expected an address, a domain or a pattern such as "*@spam.example" '
            f"(no spaces, at most {PATTERN_LIMIT} characters), not {text!r}"
        )
    if pattern.count("@") > 1:
        raise ValueError(f"expected at most one @ in a pattern, not {text!r}")
    if "@" not in pattern and not _GLOB & set(pattern) and "." not in pattern:
        raise ValueError(f'expected a domain with a dot, such as "spam.example", not {text!r}')
    return pattern


def pattern_matches(pattern: str, address: str) -> bool:
    """Whether a normalized pattern names this address (compared in lower case)."""
    address = address.lower()
    if "@" in pattern or _GLOB & set(pattern):
        return fnmatchcase(address, pattern)
    domain = address.rpartition("@")[2]
    return domain == pattern or domain.endswith("." + pattern)


def first_match(address: str, patterns: Iterable[str]) -> str | None:
    """The first pattern naming this address, or None."""
    if not address:
        return None
    return next((p for p in patterns if pattern_matches(p, address)), None)


def judge(
    address: str,
    *,
    allow: Iterable[str] = (),
    block: Iterable[str] = (),
    verdict: FilterVerdict | None = None,
) -> Judgement:
    """Allow beats block beats the filter's verdict."""
    allowed = first_match(address, allow)
    if allowed is not None:
        return Judgement(spam=False, reason=f"allowlist: {allowed}", allowed=True)
    blocked = first_match(address, block)
    if blocked is not None:
        return Judgement(spam=True, reason=f"blocklist: {blocked}")
    if verdict is not None and verdict.spam:
        return Judgement(spam=True, reason=f"{verdict.source}: {verdict.detail}".rstrip(": "))
    return NOT_SPAM
