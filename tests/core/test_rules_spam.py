"""Rules on headers and on the spam judgement, the spam and ignore actions, and what becomes
of a mail (core/disposition.py): each rule and list in its place in the order."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from mailbridge.core.disposition import Disposition, dispose
from mailbridge.core.rule_conditions import HEADER_CHARS, HEADER_VALUES
from mailbridge.core.rules import Facts, RuleError, compile_rules, evaluate
from mailbridge.core.spam import judge
from mailbridge.tickets.sender_lists import table_candidates

pytestmark = pytest.mark.unit


def matches(when: Mapping[str, object], facts: Facts) -> bool:
    rules = compile_rules([{"name": "r", "when": dict(when), "then": {"queue": "q"}}])
    return evaluate(rules, facts).matched == ("r",)


def headers(**values: str | list[str]) -> Facts:
    return Facts(
        headers={
            name.replace("_", "-").lower(): tuple(v) if isinstance(v, list) else (v,)
            for name, v in values.items()
        }
    )


def test_a_header_rule_reads_each_value_of_the_header_ignoring_case() -> None:
    mailer = {"header": {"name": "X-Mailer", "matches": "blast ?mailer"}}
    assert matches(mailer, headers(X_Mailer="BlastMailer 3"))
    assert matches(mailer, headers(X_Mailer=["Mutt", "Blast Mailer"]))
    assert not matches(mailer, headers(X_Mailer="Mutt"))
    assert not matches(mailer, headers(X_Other="Blast Mailer"))
    assert not matches(mailer, Facts(subject="Blast Mailer"))
    capital = {"header": {"name": "x-mailer", "matches": r"\bBLAST\b"}}
    assert matches(capital, headers(X_Mailer="the blast one"))


def test_a_list_of_header_tables_must_all_hold() -> None:
    both = {
        "header": [
            {"name": "X-Mailer", "matches": "blast"},
            {"name": "Precedence", "matches": "^bulk$"},
        ]
    }
    assert matches(both, headers(X_Mailer="Blast", Precedence="bulk"))
    assert not matches(both, headers(X_Mailer="Blast", Precedence="list"))
    assert not matches(both, headers(Precedence="bulk"))


def test_a_rule_reads_only_the_first_values_and_characters_of_a_header() -> None:
    mark = {"header": {"name": "X-Junk", "matches": "mark"}}
    late_value = ["x"] * HEADER_VALUES + ["mark"]
    assert not matches(mark, headers(X_Junk=late_value))
    assert matches(mark, headers(X_Junk=late_value[1:]))
    assert not matches(mark, headers(X_Junk="x" * HEADER_CHARS + "mark"))
    assert matches(mark, headers(X_Junk="x" * (HEADER_CHARS - 4) + "mark"))


def test_when_spam_reads_the_judgement() -> None:
    assert matches({"spam": True}, Facts(spam=True))
    assert not matches({"spam": True}, Facts())
    assert matches({"spam": False}, Facts())


@pytest.mark.parametrize(
    ("when", "error"),
    [
        ({"header": "X-Mailer"}, 'when.header: expected a table { name = "X-Mailer"'),
        ({"header": {"name": "X-Mailer"}}, "when.header: expected a table"),
        (
            {"header": {"name": "X-Mailer", "regex": "x"}},
            "when.header.regex: unknown key; expected one of name, matches",
        ),
        (
            {"header": {"name": "X Mailer", "matches": "x"}},
            "when.header.name: expected a header field name",
        ),
        (
            {"header": [{"name": "A", "matches": "a"}, {"name": "B", "matches": "(b"}]},
            "when.header[1].matches: expected a regular expression",
        ),
        ({"spam": "yes"}, "when.spam: expected true or false"),
        ({"any_of": [{"header": {"name": ":", "matches": "x"}}]}, "when.any_of[0].header.name"),
    ],
)
def test_header_and_spam_errors_name_the_rule_and_the_key(
    when: Mapping[str, object], error: str
) -> None:
    with pytest.raises(RuleError) as caught:
        compile_rules([{"name": "bulk", "when": dict(when), "then": {"ignore": True}}])
    assert str(caught.value).startswith(f'rule "bulk": {error}')


def test_spam_and_ignore_actions_must_be_true_or_false() -> None:
    with pytest.raises(RuleError, match='rule "x": then.ignore: expected true or false'):
        compile_rules([{"name": "x", "then": {"ignore": "yes"}}])
    with pytest.raises(RuleError, match="then.spam: expected true or false"):
        compile_rules([{"name": "x", "then": {"spam": 1}}])


RULES = compile_rules(
    [
        {"name": "bulk", "when": {"header": {"name": "X-Mailer", "matches": "blast"}},
         "then": {"ignore": True}},
        {"name": "pharma", "when": {"subject": {"words": ["pills"]}}, "then": {"spam": True}},
        {"name": "lawyers", "when": {"subject": {"words": ["subpoena"]}},
         "then": {"spam": False}},
        {"name": "unignore", "when": {"subject": {"words": ["really"]}},
         "then": {"ignore": False}},
    ]
)  # fmt: skip
BLOCKED = judge("a@spam.example", block=["*@spam.example"])
ALLOWED = judge("a@spam.example", allow=["a@spam.example"], block=["*@spam.example"])
CLEAN = judge("a@fine.example", block=["*@spam.example"])


@pytest.mark.parametrize(
    ("facts", "judgement", "action", "expected"),
    [
        (Facts(subject="Hello"), CLEAN, "spam", Disposition("ticket")),
        (Facts(subject="Hello"), BLOCKED, "spam", Disposition("spam", BLOCKED.reason)),
        (Facts(subject="Hello"), BLOCKED, "ignore", Disposition("ignore", BLOCKED.reason)),
        (Facts(subject="Hello"), ALLOWED, "spam", Disposition("ticket")),
        (Facts(subject="pills"), ALLOWED, "spam", Disposition("spam", 'rule "pharma"')),
        (Facts(subject="pills"), CLEAN, "ignore", Disposition("spam", 'rule "pharma"')),
        (Facts(subject="subpoena"), BLOCKED, "spam", Disposition("ticket", 'rule "lawyers"')),
        (Facts(subject="pills subpoena"), CLEAN, "spam", Disposition("ticket", 'rule "lawyers"')),
        (headers(X_Mailer="blast"), ALLOWED, "spam", Disposition("ignore", 'rule "bulk"')),
        (
            Facts(subject="pills really", headers={"x-mailer": ("blast",)}),
            CLEAN,
            "spam",
            Disposition("spam", 'rule "pharma"'),
        ),
    ],
)
def test_rules_then_lists_then_filter_decide_what_becomes_of_a_mail(
    facts: Facts, judgement: object, action: str, expected: Disposition
) -> None:
    decision = evaluate(RULES, facts)
    assert dispose(judgement, decision, RULES, action) == expected  # type: ignore[arg-type]


def test_the_table_is_asked_for_every_pattern_that_could_name_the_sender() -> None:
    candidates = table_candidates("Bob@Mail.Spam.Example")
    for pattern in (
        "bob@mail.spam.example",
        "bob@*",
        "mail.spam.example",
        "spam.example",
        "*@mail.spam.example",
        "*@spam.example",
        "*@*.spam.example",
        "*.spam.example",
    ):
        assert pattern in candidates
    many = table_candidates("x@" + "a." * 200 + "spam.example")
    assert "spam.example" in many and "*@spam.example" in many and len(many) < 40
    assert table_candidates("") == table_candidates("no-at-sign") == ()
