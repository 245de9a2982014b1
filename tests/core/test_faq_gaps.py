"""Grouping the questions no FAQ answer was offered for, on plain values: any matcher
plugs in, groups never chain, the largest comes first, and the FAQ's own ranking as the
default matcher groups the paraphrases of one question and nothing else
(core/faq_gaps.py)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import pytest

from mailbridge.core.faq_gaps import Cluster, Matcher, Question, bm25_matcher, cluster_questions

pytestmark = pytest.mark.unit


def questions(*subjects: str) -> list[Question]:
    return [Question(1000 + n, subject, "", "en") for n, subject in enumerate(subjects)]


def table(pairs: Mapping[int, Collection[int]]) -> Matcher:
    """A matcher that answers from a table: question -> the questions that answer it."""

    def matcher(found: Sequence[Question]) -> list[Collection[int]]:
        return [pairs.get(n, ()) for n in range(len(found))]

    return matcher


def tickets(clusters: Sequence[Cluster]) -> list[list[int]]:
    return [[q.ticket for q in c.questions] for c in clusters]


def test_the_matcher_decides_and_alike_works_both_ways() -> None:
    asked = questions("a", "b", "c", "d", "e")
    # 1 answers 0 and 2 answers 1 (one way each); 4 answers 3
    clusters = cluster_questions(asked, table({0: {1}, 1: {2}, 3: {4}}))

    # 1 is alike to 0 and 2: the group under it; 3 and 4 alike each other
    assert tickets(clusters) == [[1001, 1000, 1002], [1003, 1004]]
    assert [c.size for c in clusters] == [3, 2]


def test_groups_never_chain_through_a_question_alike_to_two() -> None:
    # 0~1, 1~2, 2~3, 3~4: a chain, no question alike to more than two
    chain = {0: {1}, 1: {2}, 2: {3}, 3: {4}}
    clusters = cluster_questions(questions(*"abcde"), table(chain))

    assert all(c.size <= 3 for c in clusters)
    assert sorted(t for group in tickets(clusters) for t in group) == list(range(1000, 1005))
    assert tickets(clusters) == [[1001, 1000, 1002], [1003, 1004]]


def test_a_question_alike_to_none_is_a_group_of_one_and_equal_groups_keep_recency() -> None:
    clusters = cluster_questions(
        questions(*"abcdef"),
        table({4: {5}, 1: {2}}),
    )

    assert tickets(clusters) == [[1001, 1002], [1004, 1005], [1000], [1003]]


def test_what_a_matcher_gets_wrong_is_ignored() -> None:
    # itself, and indices out of range, answer nothing
    matcher = table({0: {0, 7, -1}, 1: {0}})
    assert tickets(cluster_questions(questions("a", "b"), matcher)) == [[1000, 1001]]
    assert cluster_questions([], matcher) == []


def test_the_matcher_gets_every_question_once_in_order() -> None:
    seen: list[list[int]] = []

    def matcher(found: Sequence[Question]) -> list[set[int]]:
        seen.append([q.ticket for q in found])
        return [set() for _ in found]

    cluster_questions(questions("a", "b", "c"), matcher)

    assert seen == [[1000, 1001, 1002]]


ASKED = [
    ("Password reset", "I forgot my password, how can I reset it?"),
    ("Can't log in", "I forgot my password and can't log in to the app."),
    ("Reset password", "How do I reset my password? The link does not arrive."),
    ("Refund not received", "I returned the item two weeks ago and have not received my refund."),
    ("Where is my refund?", "When will I get my refund for order 1234?"),
    ("Refund", "The parcel went back on Monday, when is the money refunded?"),
    ("Invoice", "Can you send me a copy of the invoice for my last order?"),
    ("Invoice copy", "I need the invoice for order 5678, please."),
    ("Printer on fire", "My printer is on fire. What now?"),
    ("Chiusura conto", "Vorrei chiudere il mio conto, come devo fare?"),
]


def test_the_faq_ranking_groups_paraphrases_and_nothing_else() -> None:
    asked = [
        Question(1000 + n, subject, text, "it" if n == 9 else "en")
        for n, (subject, text) in enumerate(ASKED)
    ]

    clusters = cluster_questions(asked, bm25_matcher())

    assert tickets(clusters) == [
        [1000, 1001, 1002],  # passwords
        [1004, 1003, 1005],  # refunds
        [1006, 1007],  # invoices
        [1008],
        [1009],
    ]


def test_a_stricter_threshold_groups_less() -> None:
    asked = [Question(1000 + n, s, t, "en") for n, (s, t) in enumerate(ASKED[:3])]

    assert [c.size for c in cluster_questions(asked, bm25_matcher(0.25))] == [3]
    assert [c.size for c in cluster_questions(asked, bm25_matcher(0.9))] == [1, 1, 1]


def test_questions_in_other_languages_are_never_alike() -> None:
    same_words = [
        Question(1, "Password reset", "password reset please", "en"),
        Question(2, "Password reset", "password reset please", "it"),
    ]
    assert [c.size for c in cluster_questions(same_words, bm25_matcher())] == [1, 1]


def test_with_the_lexicon_questions_in_other_words_are_grouped_too() -> None:
    asked = [
        Question(1, "Stolen Visa", "someone stole my Visa, block it", "en"),
        Question(2, "Robbed", "a thief took my debit card, freeze it", "en"),
        Question(3, "Opening hours", "When is your branch in Milan open on Saturday", "en"),
    ]
    assert [c.size for c in cluster_questions(asked, bm25_matcher())] == [1, 1, 1]
    grouped = cluster_questions(asked, bm25_matcher(semantic="lexicon"))
    assert [sorted(q.ticket for q in c.questions) for c in grouped] == [[1, 2], [3]]
