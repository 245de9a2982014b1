"""Routing rules: which mails get which queue, priority, SLA policy, assignee and tags.

Operators write rules as `[[rule]]` tables, evaluated in order; `compile_rules` checks and
compiles them once (at config load) and `evaluate` applies them to the `Facts` of one mail.
A rule's shape, as TOML:

    [[rule]]
    name = "refunds"                                   # required, unique
    when.from_domain = "*.bank.example"                # every condition must hold
    when.body = { words = ["rimborso", "refund"] }     # or { regex = "..." }
    when.any_of = [ { language = "it" }, { followup = true } ]   # at least one table holds
    then = { priority = "high", tags = ["refund"], stop = true }

Conditions (`when`): `from` and `from_domain` (a glob or a list of globs, e.g.
"*@bank.example"), `mailbox` and `to_detail` (a name or a list; `to_detail` is the part after
"+" in a recipient address: "support+billing@…" has detail "billing"), `subject`, `body` and
`text` (subject and body) with `words` (whole words or phrases, case and accent insensitive:
"rimborso" matches "RIMBORSO!" but "refund" does not match "refunded") or `regex` (case
insensitive), `language` (a code or a list), `has_attachments` and `followup` (true or false),
`unanswered_at_least` (the customer's mails since the last staff reply, this one included),
and `any_of` (a list of condition tables). A rule without `when` matches every mail.

Actions (`then`): `queue`, `priority` (low, normal, high, urgent), `sla_policy`, `assignee`,
`tags` (a list), `no_ack` (suppress the acknowledgement), `ack_template`, `stop` (no later
rule is evaluated). Later matching rules override earlier ones field by field; tags
accumulate.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from fnmatch import fnmatchcase

from mailbridge.core.sla import PRIORITIES


class RuleError(ValueError):
    """A rule in the configuration is malformed; the message names the rule and the key."""


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
    """The subject, the body or both ("text") match a compiled pattern."""

    fact: str  # "subject", "body" or "text"
    pattern: re.Pattern[str]
    folded: bool  # words are matched on accent-folded text; a regex on the text as written

    def holds(self, facts: Facts) -> bool:
        if self.fact == "text":
            text = f"{facts.subject}\n{facts.body}"
        else:
            text = str(getattr(facts, self.fact))
        return self.pattern.search(_fold(text) if self.folded else text) is not None


@dataclass(frozen=True)
class Flag:
    fact: str  # "has_attachments" or "is_followup"
    expected: bool

    def holds(self, facts: Facts) -> bool:
        return bool(getattr(facts, self.fact)) is self.expected


@dataclass(frozen=True)
class AtLeast:
    fact: str  # "customer_mails_unanswered"
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


Condition = Glob | OneOf | Text | Flag | AtLeast | AllOf | AnyOf


@dataclass(frozen=True)
class Actions:
    """What rules decide; None (or no tags) means no rule set that field."""

    queue: str | None = None
    priority: str | None = None
    sla_policy: str | None = None
    assignee: str | None = None
    tags: tuple[str, ...] = ()
    no_ack: bool | None = None
    ack_template: str | None = None
    stop: bool = False

    def then(self, later: Actions) -> Actions:
        """These actions overridden by a later rule's, field by field; tags accumulate."""
        changes: dict[str, object] = {
            f.name: getattr(later, f.name)
            for f in fields(later)
            if f.name not in ("tags", "stop") and getattr(later, f.name) is not None
        }
        tags = tuple(dict.fromkeys(self.tags + later.tags))
        return replace(self, **changes, tags=tags, stop=self.stop or later.stop)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Rule:
    name: str
    when: AllOf
    then: Actions


@dataclass(frozen=True)
class Decision:
    """The merged actions of the matching rules, and their names in order (for the audit)."""

    actions: Actions = field(default_factory=Actions)
    matched: tuple[str, ...] = ()


def evaluate(rules: Sequence[Rule], facts: Facts) -> Decision:
    actions = Actions()
    matched: list[str] = []
    for rule in rules:
        if not rule.when.holds(facts):
            continue
        actions = actions.then(rule.then)
        matched.append(rule.name)
        if rule.then.stop:
            break
    return Decision(actions=actions, matched=tuple(matched))


# --- compiling rules from configuration tables ---------------------------------------------

_RULE_KEYS = ("name", "when", "then")
_GLOBS = {"from": "sender", "from_domain": "sender_domain"}
_NAMES = {"mailbox": "mailbox", "to_detail": "to_details", "language": "language"}
_TEXTS = ("subject", "body", "text")
_FLAGS = {"has_attachments": "has_attachments", "followup": "is_followup"}
_CONDITION_KEYS = (*_GLOBS, *_NAMES, *_TEXTS, *_FLAGS, "unanswered_at_least", "any_of")
_STRING_ACTIONS = ("queue", "sla_policy", "assignee", "ack_template")
_ACTION_KEYS = (*_STRING_ACTIONS, "priority", "tags", "no_ack", "stop")


class _Invalid(Exception):
    """A value is wrong; carries the dotted key and what was expected, not the rule."""

    def __init__(self, key: str, expected: str) -> None:
        super().__init__(f"{key}: {expected}")


def compile_rules(raw: Sequence[Mapping[str, object]]) -> tuple[Rule, ...]:
    """Check and compile `[[rule]]` tables; raises RuleError naming the rule and the key."""
    rules: list[Rule] = []
    seen: set[str] = set()
    for position, table in enumerate(raw, start=1):
        name = table.get("name") if isinstance(table, Mapping) else None
        label = f'rule "{name}"' if isinstance(name, str) and name else f"rule {position}"
        try:
            rule = _compile_rule(table)
        except _Invalid as error:
            raise RuleError(f"{label}: {error}") from None
        if rule.name in seen:
            raise RuleError(f"{label}: name: expected a name no other rule has")
        seen.add(rule.name)
        rules.append(rule)
    return tuple(rules)


def _compile_rule(table: object) -> Rule:
    if not isinstance(table, Mapping):
        raise _Invalid("rule", "expected a table with name, when and then")
    _reject_unknown(table, _RULE_KEYS, "")
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _Invalid("name", "expected a non-empty string naming the rule")
    return Rule(
        name=name,
        when=_compile_when(table.get("when", {}), "when"),
        then=_compile_then(table.get("then", {})),
    )


def _compile_when(table: object, key: str) -> AllOf:
    if not isinstance(table, Mapping):
        raise _Invalid(key, "expected a table of conditions")
    _reject_unknown(table, _CONDITION_KEYS, key)
    return AllOf(tuple(_condition(k, v, f"{key}.{k}") for k, v in table.items()))


def _condition(kind: str, value: object, key: str) -> Condition:  # noqa: PLR0911
    if kind in _GLOBS:
        patterns = _strings(value, key, "a pattern or a list of patterns")
        return Glob(_GLOBS[kind], tuple(p.lower() for p in patterns))
    if kind in _NAMES:
        names = _strings(value, key, "a name or a list of names")
        return OneOf(_NAMES[kind], frozenset(n.lower() for n in names))
    if kind in _TEXTS:
        return _text(kind, value, key)
    if kind in _FLAGS:
        if not isinstance(value, bool):
            raise _Invalid(key, "expected true or false")
        return Flag(_FLAGS[kind], value)
    if kind == "unanswered_at_least":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _Invalid(key, "expected a whole number of mails, 1 or more")
        return AtLeast("customer_mails_unanswered", value)
    if not isinstance(value, list) or not value:
        raise _Invalid(key, "expected a non-empty list of condition tables")
    return AnyOf(tuple(_compile_when(group, f"{key}[{i}]") for i, group in enumerate(value)))


def _text(kind: str, value: object, key: str) -> Text:
    if not isinstance(value, Mapping) or len(value) != 1 or not {"words", "regex"} >= set(value):
        raise _Invalid(key, 'expected a table with either "words" or "regex"')
    if "words" in value:
        words = _strings(value["words"], f"{key}.words", "a word or phrase, or a list of them")
        return Text(kind, _words_pattern(words, f"{key}.words"), folded=True)
    expression = value["regex"]
    if not isinstance(expression, str) or not expression:
        raise _Invalid(f"{key}.regex", "expected a regular expression as a string")
    try:
        pattern = re.compile(expression, re.IGNORECASE)
    except re.error as error:
        raise _Invalid(f"{key}.regex", f"expected a regular expression: {error}") from None
    return Text(kind, pattern, folded=False)


def _words_pattern(words: Sequence[str], key: str) -> re.Pattern[str]:
    alternatives = []
    for phrase in words:
        tokens = _fold(phrase).split()
        if not tokens:
            raise _Invalid(key, "expected words or phrases, not blank strings")
        # Whole words only, whatever punctuation or spacing surrounds or separates them.
        alternatives.append(r"\W+".join(re.escape(token) for token in tokens))
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")


def _compile_then(table: object) -> Actions:
    if not isinstance(table, Mapping):
        raise _Invalid("then", "expected a table of actions")
    _reject_unknown(table, _ACTION_KEYS, "then")
    values: dict[str, object] = {}
    for name in _STRING_ACTIONS:
        if name in table:
            values[name] = _string(table[name], f"then.{name}")
    if "priority" in table:
        priority = table["priority"]
        if priority not in PRIORITIES:
            raise _Invalid("then.priority", f"expected one of {', '.join(PRIORITIES)}")
        values["priority"] = priority
    if "tags" in table:
        values["tags"] = tuple(_strings(table["tags"], "then.tags", "a list of tags"))
    for name in ("no_ack", "stop"):
        if name in table and not isinstance(table[name], bool):
            raise _Invalid(f"then.{name}", "expected true or false")
        if name in table:
            values[name] = table[name]
    return Actions(**values)  # type: ignore[arg-type]


def _reject_unknown(table: Mapping[object, object], known: Sequence[str], key: str) -> None:
    for name in table:
        if name not in known:
            where = f"{key}.{name}" if key else str(name)
            raise _Invalid(where, f"unknown key; expected one of {', '.join(known)}")


def _string(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(key, "expected a non-empty string")
    return value


def _strings(value: object, key: str, expected: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _Invalid(key, f"expected {expected}")
    return [_string(item, key) for item in items]


def _fold(text: str) -> str:
    """Lower-cased, without accents: "Perché" and "PERCHE" compare equal."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))
