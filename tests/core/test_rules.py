"""Routing rules: each condition kind, AND/any_of, ordering and overrides, and config errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta

import pytest

from mailbridge.core.rules import (
    Actions,
    Facts,
    RuleError,
    compile_rules,
    evaluate,
    needs_fact,
)

pytestmark = pytest.mark.unit


def matches(when: Mapping[str, object], facts: Facts) -> bool:
    rules = compile_rules([{"name": "r", "when": dict(when), "then": {"queue": "q"}}])
    return evaluate(rules, facts).matched == ("r",)


def compile_error(rule: Mapping[str, object]) -> str:
    with pytest.raises(RuleError) as caught:
        compile_rules([{"name": "first", "then": {"queue": "q"}}, dict(rule)])
    return str(caught.value)


@pytest.mark.parametrize(
    ("when", "sender", "expected"),
    [
        ({"from": "Boss@Bank.example"}, "boss@bank.example", True),
        ({"from": "*@bank.example"}, "Anna@BANK.example", True),
        ({"from": "*@bank.example"}, "anna@bank.example.evil", False),
        ({"from": ["x@y.example", "*@bank.example"]}, "a@bank.example", True),
        ({"from_domain": "bank.example"}, "a@bank.example", True),
        ({"from_domain": "bank.example"}, "a@mail.bank.example", False),
        ({"from_domain": "*.bank.example"}, "a@mail.bank.example", True),
    ],
)
def test_sender_conditions(when: Mapping[str, object], sender: str, expected: bool) -> None:
    assert matches(when, Facts(sender=sender)) is expected


def test_mailbox_and_plus_address_detail() -> None:
    facts = Facts(mailbox="Support", recipients=("help+Billing@shop.example", "x@y.example"))
    assert matches({"mailbox": "support"}, facts)
    assert not matches({"mailbox": ["Sales", "INBOX"]}, facts)
    assert matches({"to_detail": "billing"}, facts)
    assert not matches({"to_detail": "refunds"}, facts)
    assert not matches({"to_detail": "billing"}, Facts(recipients=("help@shop.example",)))


@pytest.mark.parametrize(
    ("words", "text", "expected"),
    [
        (["rimborso"], "Voglio il RIMBORSO!", True),
        (["refund"], "I was refunded already", False),
        (["refund"], "refund.", True),
        (["perché"], "PERCHE non rispondete", True),
        (["perche"], "Perché non rispondete", True),
        (["terza volta che scrivo"], "è la Terza  volta, che scrivo", True),
        (["terza volta che scrivo"], "terza volta scrivo", False),
        (["still no answer"], "stillno answer", False),
        (["cancel", "disdetta"], "Invio la disdetta del contratto", True),
    ],
)
def test_body_words(words: list[str], text: str, expected: bool) -> None:
    assert matches({"body": {"words": words}}, Facts(body=text)) is expected


def test_subject_body_and_text_look_at_their_own_part() -> None:
    facts = Facts(subject="Reclamo", body="ordine 123")
    assert matches({"subject": {"words": "reclamo"}}, facts)
    assert not matches({"body": {"words": "reclamo"}}, facts)
    assert matches({"text": {"words": "reclamo"}}, facts)
    assert matches({"text": {"words": "ordine"}}, facts)


def test_regex_is_case_insensitive_and_searches_anywhere() -> None:
    facts = Facts(subject="Order #A-1234 missing")
    assert matches({"subject": {"regex": r"#a-\d{4}"}}, facts)
    assert not matches({"subject": {"regex": r"^missing"}}, facts)


@pytest.mark.parametrize(
    ("regex", "text"),
    [
        (r"\bABF\b", "ricorso all'abf"),  # capitals in the pattern
        (r"[A-Z]{3}-\d", "ref xyz-9"),  # a class of capitals
        (r"\bRIMBORS\w+", "voglio il rimborso"),
        (r"\brimbors\w+", "VOGLIO IL RIMBORSO"),  # capitals in the text only
        (r"(?P<Word>città)\s+\S+", "CITTÀ DI ROMA"),
    ],
)
def test_a_regex_ignores_case_whichever_side_has_capitals(regex: str, text: str) -> None:
    assert matches({"body": {"regex": regex}}, Facts(body=text))
    assert not matches({"body": {"regex": regex}}, Facts(body="nothing of the sort"))


def test_language_attachments_followup_and_unanswered() -> None:
    facts = Facts(
        language="it", has_attachments=True, is_followup=True, customer_mails_unanswered=3
    )
    assert matches({"language": ["en", "it"]}, facts)
    assert not matches({"language": "en"}, facts)
    assert not matches({"language": "en"}, Facts(language=None))
    assert matches({"has_attachments": True}, facts)
    assert not matches({"has_attachments": False}, facts)
    assert matches({"followup": True}, facts)
    assert not matches({"followup": True}, Facts())
    assert matches({"unanswered_at_least": 3}, facts)
    assert not matches({"unanswered_at_least": 4}, facts)
    assert matches({"open_tickets_at_least": 1}, facts)
    assert not matches({"open_tickets_at_least": 2}, facts)
    assert matches({"open_tickets_at_least": 2}, replace(facts, customer_open_tickets=2))


def test_all_conditions_must_hold_and_any_of_needs_one_group() -> None:
    when = {"from_domain": "bank.example", "body": {"words": "urgente"}}
    assert matches(when, Facts(sender="a@bank.example", body="è urgente"))
    assert not matches(when, Facts(sender="a@bank.example", body="niente"))
    assert not matches(when, Facts(sender="a@other.example", body="è urgente"))
    any_of = {"any_of": [{"language": "it", "followup": True}, {"unanswered_at_least": 2}]}
    assert matches(any_of, Facts(language="it", is_followup=True))
    assert matches(any_of, Facts(customer_mails_unanswered=2))
    assert not matches(any_of, Facts(language="it"))


def test_a_rule_without_conditions_matches_every_mail() -> None:
    rules = compile_rules([{"name": "default", "then": {"queue": "general"}}])
    assert evaluate(rules, Facts()).actions.queue == "general"


def test_later_rules_override_field_by_field_and_tags_accumulate() -> None:
    rules = compile_rules([
        {"name": "default", "then": {"queue": "general", "priority": "normal", "tags": ["a"]}},
        {"name": "never", "when": {"followup": True}, "then": {"queue": "never"}},
        {"name": "bank", "then": {"priority": "high", "no_ack": True, "tags": ["b", "a"]}},
    ])  # fmt: skip
    decision = evaluate(rules, Facts())
    assert decision.matched == ("default", "bank")
    assert decision.actions == Actions(
        queue="general", priority="high", tags=("a", "b"), no_ack=True
    )


def test_stop_ends_evaluation() -> None:
    rules = compile_rules([
        {"name": "vip", "when": {"from": "*@vip.example"},
         "then": {"assignee": "anna@example.com", "ack_template": "vip", "stop": True}},
        {"name": "everyone", "then": {"assignee": "bot@example.com", "sla_policy": "standard"}},
    ])  # fmt: skip
    vip = evaluate(rules, Facts(sender="ceo@vip.example"))
    assert vip.matched == ("vip",)
    assert vip.actions == Actions(assignee="anna@example.com", ack_template="vip", stop=True)
    other = evaluate(rules, Facts(sender="a@b.example"))
    assert other.matched == ("everyone",)
    assert other.actions == Actions(assignee="bot@example.com", sla_policy="standard")


def test_no_rules_decide_nothing() -> None:
    decision = evaluate((), Facts())
    assert decision.matched == ()
    assert decision.actions == Actions()


def test_bad_regex_names_the_rule_and_key() -> None:
    message = compile_error({"name": "refunds", "when": {"body": {"regex": "ab(c"}}})
    assert message == (
        'rule "refunds": when.body.regex: expected a regular expression: '
        "missing ), unterminated subpattern at position 2"
    )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"name": "x", "when": {"frm": "a"}}, 'rule "x": when.frm: unknown key; expected one of'),
        ({"name": "x", "thne": {}}, 'rule "x": thne: unknown key; expected one of name, when'),
        (
            {"name": "x", "then": {"priority": "asap"}},
            'rule "x": then.priority: expected one of low, normal, high, urgent',
        ),
        ({"when": {"followup": True}}, "rule 2: name: expected a non-empty string"),
        ({"name": "", "then": {}}, "rule 2: name: expected a non-empty string"),
        ({"name": "first"}, 'rule "first": name: expected a name no other rule has'),
        ({"name": "x", "when": {"body": {"words": []}}}, 'rule "x": when.body.words: expected'),
        (
            {"name": "x", "when": {"body": "refund"}},
            'rule "x": when.body: expected a table with either "words" or "regex"',
        ),
        (
            {"name": "x", "when": {"body": {"words": "a", "regex": "b"}}},
            'rule "x": when.body: expected a table with either',
        ),
        ({"name": "x", "when": {"followup": "yes"}}, 'rule "x": when.followup: expected true'),
        (
            {"name": "x", "when": {"unanswered_at_least": 0}},
            'rule "x": when.unanswered_at_least: expected a whole number',
        ),
        (
            {"name": "x", "when": {"open_tickets_at_least": True}},
            'rule "x": when.open_tickets_at_least: expected a whole number of tickets',
        ),
        (
            {"name": "x", "when": {"any_of": [{"lang": "it"}]}},
            'rule "x": when.any_of[0].lang: unknown key',
        ),
        ({"name": "x", "then": {"stop": 1}}, 'rule "x": then.stop: expected true or false'),
        (
            {"name": "x", "then": {"assignee": "mario"}},
            'rule "x": then.assignee: expected the staff member\'s email address',
        ),
        (
            {"name": "x", "then": {"respond_within": "soon"}},
            'rule "x": then.respond_within: expected a duration like 30s, 45m, 8h',
        ),
    ],
)
def test_compile_errors_name_the_rule_and_key(rule: Mapping[str, object], expected: str) -> None:
    assert compile_error(rule).startswith(expected)


def test_a_single_string_stands_for_a_one_element_list() -> None:
    (rule,) = compile_rules(
        [{"name": "x", "when": {"from": "*@a.example"}, "then": {"tags": "vip"}}]
    )
    assert rule.then.tags == ("vip",)
    assert evaluate([rule], Facts(sender="b@a.example")).matched == ("x",)


def test_respond_within_is_a_duration_and_the_shortest_of_the_matching_rules_holds() -> None:
    rules = compile_rules(
        [
            {"name": "slow", "then": {"respond_within": "8h"}},
            {
                "name": "angry",
                "when": {"body": {"words": "vergogna"}},
                "then": {"respond_within": "2h"},
            },
        ]
    )
    assert evaluate(rules, Facts(body="ciao")).actions.respond_within == timedelta(hours=8)
    assert evaluate(rules, Facts(body="Che vergogna!")).actions.respond_within == timedelta(hours=2)
    later_but_longer = compile_rules(
        [
            {"name": "fast", "then": {"respond_within": "1h"}},
            {"name": "slow", "then": {"respond_within": "8h"}},
        ]
    )
    assert evaluate(later_but_longer, Facts()).actions.respond_within == timedelta(hours=1)


def test_only_rule_sets_that_count_open_tickets_need_them_counted() -> None:
    counting = compile_rules(
        [
            {"name": "a", "when": {"language": "it"}},
            {"name": "b", "when": {"any_of": [{"followup": True}, {"open_tickets_at_least": 2}]}},
        ]
    )
    assert needs_fact(counting, "customer_open_tickets")
    assert not needs_fact(counting, "customer_mails_unanswered")
    assert not needs_fact(
        compile_rules([{"name": "a", "when": {"unanswered_at_least": 2}}]), "customer_open_tickets"
    )
