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
`open_tickets_at_least` (the customer's tickets not resolved or closed, this mail's
included), and `any_of` (a list of condition tables). A rule without `when` matches every
mail.

`header = { name = "X-Mailer", matches = "bulk ?mailer" }` holds when one of the values of
that header matches the regular expression (case insensitive, searched anywhere in the
value, as decoded by the parser); a list of such tables holds when each of them does. A
rule reads only the first HEADER_VALUES (10) values of a header and the first HEADER_CHARS
(1000) characters of each (core/rule_conditions.py), however many or long a sender makes
them. `spam = true` (or false) holds when the mail's spam judgement (the `[spam]` lists and
the mail server's filter, core/spam.py) says it is (or is not) spam; the judgement is made
for mail opening a ticket, and a follow-up is never spam to a rule.

Actions (`then`): `queue`, `priority` (low, normal, high, urgent), `sla_policy`, `assignee`,
`respond_within` (a duration: the first response falls due at most this far from the mail),
`tags` (a list), `no_ack` (suppress the acknowledgement), `ack_template`, `stop` (no later
rule is evaluated). Later matching rules override earlier ones field by field; tags
accumulate, and of several `respond_within` the shortest holds.

Two actions decide what becomes of a mail that would open a ticket, before the spam
judgement does (core/disposition.py): `ignore = true` stores it and makes no ticket (it is
listed by `mailbridge ignored list`), `spam = true` makes it a `spam` ticket (no
acknowledgement, notification or deadline). `spam = false` keeps it out of spam whatever
the lists or the filter say; `ignore = false` undoes an earlier rule's `ignore`. Rules
decide even for an allowlisted sender: the allowlist only overrules the blocklist and the
filter. On a follow-up, both mean nothing (the mail joins its ticket).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta

from mailbridge.core.rule_conditions import (
    AllOf,
    AnyOf,
    AtLeast,
    Condition,
    Facts,
    Flag,
    Glob,
    HeaderMatch,
    OneOf,
    Text,
    fold,
)
from mailbridge.core.sla import PRIORITIES, parse_duration

__all__ = [
    "Actions",
    "Decision",
    "Facts",
    "Rule",
    "RuleError",
    "compile_rules",
    "evaluate",
    "needs_fact",
    "set_by",
]


class RuleError(ValueError):
    """A rule in the configuration is malformed; the message names the rule and the key."""


@dataclass(frozen=True)
class Actions:
    """What rules decide; None (or no tags) means no rule set that field."""

    queue: str | None = None
    priority: str | None = None
    sla_policy: str | None = None
    assignee: str | None = None
    tags: tuple[str, ...] = ()
    respond_within: timedelta | None = None  # the first response due at most this far off
    no_ack: bool | None = None
    ack_template: str | None = None
    spam: bool | None = None  # true: a spam ticket; false: not spam, whatever judged it
    ignore: bool | None = None  # stored, no ticket
    stop: bool = False

    def then(self, later: Actions) -> Actions:
        """These actions overridden by a later rule's, field by field; tags accumulate and
        the shortest respond_within holds (each rule asks for an answer at most that late)."""
        changes: dict[str, object] = {
            f.name: getattr(later, f.name)
            for f in fields(later)
            if f.name not in _MERGED and getattr(later, f.name) is not None
        }
        tags = tuple(dict.fromkeys(self.tags + later.tags))
        within = [w for w in (self.respond_within, later.respond_within) if w is not None]
        return replace(
            self,
            **changes,  # type: ignore[arg-type]
            tags=tags,
            stop=self.stop or later.stop,
            respond_within=min(within, default=None),
        )


_MERGED = frozenset({"tags", "stop", "respond_within"})


@dataclass(frozen=True)
class Rule:
    name: str
    when: AllOf
    then: Actions


def needs_fact(rules: Sequence[Rule], fact: str) -> bool:
    """Whether any rule counts on `fact` (e.g. "customer_open_tickets"): one that costs a
    query is only worked out for rule sets that read it."""

    def reads(condition: object) -> bool:
        if isinstance(condition, AtLeast):
            return condition.fact == fact
        if isinstance(condition, AllOf):
            return any(reads(c) for c in condition.conditions)
        if isinstance(condition, AnyOf):
            return any(reads(g) for g in condition.groups)
        return False

    return any(reads(rule.when) for rule in rules)


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


def set_by(rules: Sequence[Rule], decision: Decision, action: str) -> str | None:
    """The name of the matching rule whose `action` (e.g. "ignore") the decision holds: the
    last one that set it, as later rules override earlier ones."""
    by_name = {rule.name: rule for rule in rules}
    for name in reversed(decision.matched):
        if getattr(by_name[name].then, action) is not None:
            return name
    return None


# --- compiling rules from configuration tables ---------------------------------------------

_RULE_KEYS = ("name", "when", "then")
_GLOBS = {"from": "sender", "from_domain": "sender_domain"}
_NAMES = {"mailbox": "mailbox", "to_detail": "to_details", "language": "language"}
_TEXTS = ("subject", "body", "text")
_FLAGS = {"has_attachments": "has_attachments", "followup": "is_followup", "spam": "spam"}
# Conditions on a count: "at least N" of what the fact counts.
_COUNTS = {
    "unanswered_at_least": ("customer_mails_unanswered", "mails"),
    "open_tickets_at_least": ("customer_open_tickets", "tickets"),
}
_CONDITION_KEYS = (*_GLOBS, *_NAMES, *_TEXTS, "header", *_FLAGS, *_COUNTS, "any_of")
_HEADER_KEYS = ("name", "matches")
# A field name as RFC 5322 allows it: printable ASCII but the colon (folding limits it).
_FIELD_NAME = re.compile(r"[!-9;-~]{1,76}")
NAME_LIMIT = 64
_LETTERS_OUTSIDE_ESCAPES = re.compile(r"\\.|\(\?P?<[^>]*>|\(\?P=\w+\)|[^\w]")


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


def _condition(kind: str, value: object, key: str) -> Condition:
    if kind in _GLOBS:
        patterns = _strings(value, key, "a pattern or a list of patterns")
        return Glob(_GLOBS[kind], tuple(p.lower() for p in patterns))
    if kind in _NAMES:
        names = _strings(value, key, "a name or a list of names")
        return OneOf(_NAMES[kind], frozenset(n.lower() for n in names))
    if kind in _TEXTS:
        return _text(kind, value, key)
    if kind == "header":
        return _headers(value, key)
    if kind in _FLAGS:
        return Flag(_FLAGS[kind], _flag(value, key))
    if kind in _COUNTS:
        fact, unit = _COUNTS[kind]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _Invalid(key, f"expected a whole number of {unit}, 1 or more")
        return AtLeast(fact, value)
    if not isinstance(value, list) or not value:
        raise _Invalid(key, "expected a non-empty list of condition tables")
    return AnyOf(tuple(_compile_when(group, f"{key}[{i}]") for i, group in enumerate(value)))


def _text(kind: str, value: object, key: str) -> Text:
    if not isinstance(value, Mapping) or len(value) != 1 or not {"words", "regex"} >= set(value):
        raise _Invalid(key, 'expected a table with either "words" or "regex"')
    if "words" in value:
        words = _strings(value["words"], f"{key}.words", "a word or phrase, or a list of them")
        return Text(kind, _words_pattern(words, f"{key}.words"), form="folded")
    pattern, form = _regex(value["regex"], f"{key}.regex")
    return Text(kind, pattern, form)


def _headers(value: object, key: str) -> Condition:
    """One `{ name, matches }` table, or a list of them that must all hold."""
    if isinstance(value, list) and value:
        return AllOf(tuple(_header(table, f"{key}[{i}]") for i, table in enumerate(value)))
    return _header(value, key)


def _header(table: object, key: str) -> HeaderMatch:
    expected = 'expected a table { name = "X-Mailer", matches = "a regular expression" }'
    if not isinstance(table, Mapping) or set(table) != set(_HEADER_KEYS):
        if isinstance(table, Mapping):
            _reject_unknown(table, _HEADER_KEYS, key)
        raise _Invalid(key, expected)
    name = table["name"]
    if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
        raise _Invalid(f"{key}.name", "expected a header field name such as X-Mailer")
    pattern, form = _regex(table["matches"], f"{key}.matches")
    return HeaderMatch(name.lower(), pattern, "written" if form == "written" else "lower")


def _regex(expression: object, key: str) -> tuple[re.Pattern[str], str]:
    """A case-insensitive pattern and the form of the text it reads ("lower" or "written")."""
    if not isinstance(expression, str) or not expression:
        raise _Invalid(key, "expected a regular expression as a string")
    # Case-insensitive matching costs Python's re about three times as much as exact
    # matching; a pattern without capitals matches the same on the lower-cased text.
    letters = _LETTERS_OUTSIDE_ESCAPES.sub("", expression)
    lower = "(?-" not in expression and not any(c.isupper() for c in letters)
    try:
        pattern = re.compile(expression, 0 if lower else re.IGNORECASE)
    except re.error as error:
        raise _Invalid(key, f"expected a regular expression: {error}") from None
    return pattern, "lower" if lower else "written"


def _words_pattern(words: Sequence[str], key: str) -> re.Pattern[str]:
    alternatives = []
    for phrase in words:
        tokens = fold(phrase).split()
        if not tokens:
            raise _Invalid(key, "expected words or phrases, not blank strings")
        # Whole words only, whatever punctuation or spacing surrounds or separates them.
        alternatives.append(r"\W+".join(re.escape(token) for token in tokens))
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")


def _compile_then(table: object) -> Actions:
    if not isinstance(table, Mapping):
        raise _Invalid("then", "expected a table of actions")
    _reject_unknown(table, _ACTION_KEYS, "then")
    values = {name: _ACTIONS[name](value, f"then.{name}") for name, value in table.items()}
    return Actions(**values)  # type: ignore[arg-type]


def _name(value: object, key: str) -> str:
    """A queue, tag or policy name: stored in a column of 64 characters."""
    name = _string(value, key)
    if len(name) > NAME_LIMIT:
        raise _Invalid(key, f"expected at most {NAME_LIMIT} characters")
    return name


def _assignee(value: object, key: str) -> str:
    address = _string(value, key)
    if "@" not in address:
        raise _Invalid(key, "expected the staff member's email address")
    return address


def _priority(value: object, key: str) -> str:
    if value not in PRIORITIES:
        raise _Invalid(key, f"expected one of {', '.join(PRIORITIES)}")
    return str(value)


def _duration(value: object, key: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as error:
        raise _Invalid(key, f"expected {error}") from None


def _tags(value: object, key: str) -> tuple[str, ...]:
    return tuple(_name(tag, key) for tag in _strings(value, key, "a list of tags"))


def _flag(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(key, "expected true or false")
    return value


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


_ACTIONS: dict[str, Callable[[object, str], object]] = {
    "queue": _name,
    "priority": _priority,
    "sla_policy": _name,
    "assignee": _assignee,
    "respond_within": _duration,
    "tags": _tags,
    "no_ack": _flag,
    "ack_template": _string,
    "spam": _flag,
    "ignore": _flag,
    "stop": _flag,
}
_ACTION_KEYS = tuple(_ACTIONS)
