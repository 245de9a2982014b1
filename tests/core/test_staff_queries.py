"""core.staff_queries: which staff mail is a query, and what refuses it."""

from __future__ import annotations

from mailbridge.core.staff import parse_commands
from mailbridge.core.staff_queries import MAX_QUERIES, query_of


def test_commands_alone_are_a_query() -> None:
    query = query_of(parse_commands("#mine\n\n#show 1042\n"))
    assert query is not None and not query.problems
    assert [c.name for c in query.commands] == ["mine", "show"]


def test_an_answer_on_a_ticket_is_no_query() -> None:
    assert query_of(parse_commands("#close\nThanks, done.")) is None
    assert query_of(parse_commands("Hello Ada, here it is.")) is None
    assert query_of(parse_commands("#prioriti high\nText")) is None


def test_ticket_commands_beside_a_question_refuse_it_whole() -> None:
    query = query_of(parse_commands("#mine\n#close"))
    assert query is not None and "#close" in query.problems[0]


def test_text_after_a_question_refuses_it_so_it_reaches_no_customer() -> None:
    query = query_of(parse_commands("#away until 12/01\nI am off next week, Ada."))
    assert query is not None and "commands alone" in query.problems[0]


def test_a_malformed_question_is_still_a_query_and_says_why() -> None:
    query = query_of(parse_commands("#show twelve"))
    assert query is not None and query.commands == ()
    assert "#show twelve" in query.problems[0]


def test_too_many_questions_are_refused() -> None:
    query = query_of(parse_commands("#mine\n" * (MAX_QUERIES + 1)))
    assert query is not None and query.problems
