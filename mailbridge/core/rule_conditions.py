"""What routing rules look at (`Facts`, one mail's as plain values) and the compiled
conditions that test them; core/rules.py compiles the operator's tables into these and
documents them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from mailbridge.core.folding import strip_accents

__all__ = [
    "HEADER_CHARS",
    "HEADER_VALUES",
    "AllOf",
    "AnyOf",
    "AtLeast",
    "Condition",
    "Facts",
    "Flag",
    "Glob",
    "HeaderMatch",
    "OneOf",
    "Text",
    "fold",
]

# Of a header a rule reads, the values and the characters of each that its pattern sees: a
# header repeated or stretched by a sender must not make an operator's pattern crawl.
HEADER_VALUES = 10
HEADER_CHARS = 1000


@dataclass(frozen=True)
class Facts:
    """What a rule can look at about one customer mail, as plain values."""

    sender: str = ""
    mailbox: str = ""
    recipients: tuple[str, ...] = ()
    subject: str = ""
    body: str = ""  # the customer's own words, quoted history trimmed
    language: str | None = None
    has_attachments: bool = False
    is_followup: bool = False
    customer_mails_unanswered: int = 1
    customer_open_tickets: int = 1  # counted only when a rule asks (see needs_fact)
    # Lower-cased header name -> its values as parsed; rules read a bounded view of them
    # (`header_view`), so this may hold them whole.
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    spam: bool = False  # the spam judgement of a mail opening a ticket (inbound/spam.py)

    def view(self, part: str, form: str) -> str:
        """The subject, body or both ("text") as written, lower-cased or accent-folded;
        computed once per mail however many rules look."""
        cache = self.__dict__.setdefault("_views", {})
        key = (part, form)
        if key not in cache:
            if form == "written":
                cache[key] = (
                    f"{self.subject}\n{self.body}" if part == "text" else getattr(self, part)
                )
            else:
                written = self.view(part, "written")
                cache[key] = written.lower() if form == "lower" else fold(written)
        return str(cache[key])

    def header_view(self, name: str, form: str) -> tuple[str, ...]:
        """The first HEADER_VALUES values of the header `name` (lower case), each cut to
        HEADER_CHARS, as written or lower-cased; computed once per mail."""
        cache = self.__dict__.setdefault("_views", {})
        key = ("header:" + name, form)
        if key not in cache:
            values = tuple(v[:HEADER_CHARS] for v in self.headers.get(name, ())[:HEADER_VALUES])
            cache[key] = tuple(v.lower() for v in values) if form == "lower" else values
        found: tuple[str, ...] = cache[key]
        return found

    @property
    def sender_domain(self) -> str:
        return self.sender.rpartition("@")[2].lower()

    @property
    def to_details(self) -> tuple[str, ...]:
        """Plus-address details of the recipients: "support+billing@x" gives "billing"."""
        locals_ = (address.rpartition("@")[0] for address in self.recipients)
        return tuple(local.partition("+")[2].lower() for local in locals_ if "+" in local)


@dataclass(frozen=True)
class Glob:
    """The fact (an address or a domain) matches one of the shell-style patterns."""

    fact: str  # "sender" or "sender_domain"
    patterns: tuple[str, ...]

    def holds(self, facts: Facts) -> bool:
        value = str(getattr(facts, self.fact)).lower()
        return any(fnmatchcase(value, pattern) for pattern in self.patterns)


@dataclass(frozen=True)
class OneOf:
    """The fact (or one of its values, for a tuple) is one of the names, ignoring case."""

    fact: str  # "mailbox", "to_details" or "language"
    names: frozenset[str]

    def holds(self, facts: Facts) -> bool:
        value = getattr(facts, self.fact)
        values = value if isinstance(value, tuple) else (value,)
        return any(v is not None and v.lower() in self.names for v in values)


@dataclass(frozen=True)
class Text:
    """The subject, the body or both ("text") match a compiled pattern, on the text as
    written, lower-cased or accent-folded (`form`)."""

    fact: str  # "subject", "body" or "text"
    pattern: re.Pattern[str]
    form: str  # "written", "lower" or "folded"

    def holds(self, facts: Facts) -> bool:
        return self.pattern.search(facts.view(self.fact, self.form)) is not None


@dataclass(frozen=True)
class HeaderMatch:
    """One of the header's values (a bounded view: `Facts.header_view`) matches a compiled
    pattern, on the value as written or lower-cased (`form`)."""

    name: str  # lower case
    pattern: re.Pattern[str]
    form: str  # "written" or "lower"

    def holds(self, facts: Facts) -> bool:
        return any(self.pattern.search(v) for v in facts.header_view(self.name, self.form))


@dataclass(frozen=True)
class Flag:
    fact: str  # "has_attachments", "is_followup" or "spam"
    expected: bool

    def holds(self, facts: Facts) -> bool:
        return bool(getattr(facts, self.fact)) is self.expected


@dataclass(frozen=True)
class AtLeast:
    fact: str  # "customer_mails_unanswered" or "customer_open_tickets"
    minimum: int

    def holds(self, facts: Facts) -> bool:
        return int(getattr(facts, self.fact)) >= self.minimum


@dataclass(frozen=True)
class AllOf:
    conditions: tuple[Condition, ...]

    def holds(self, facts: Facts) -> bool:
        return all(condition.holds(facts) for condition in self.conditions)


@dataclass(frozen=True)
class AnyOf:
    groups: tuple[AllOf, ...]

    def holds(self, facts: Facts) -> bool:
        return any(group.holds(facts) for group in self.groups)


Condition = Glob | OneOf | Text | HeaderMatch | Flag | AtLeast | AllOf | AnyOf


def fold(text: str) -> str:
    """Lower-cased, without accents: "Perché" and "PERCHE" compare equal."""
    return strip_accents(text.casefold())
