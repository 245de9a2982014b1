"""The collision check's decision, on plain values."""

from __future__ import annotations

import time

import pytest

from mailbridge.core.collision import Posted, answered_mail, decide, is_news

pytestmark = pytest.mark.unit


def customer(article_id: int, kind: str = "customer", author: str = "customer") -> Posted:
    return Posted(article_id, "in", author, kind, internal=False)


def staff(article_id: int, kind: str = "reply", internal: bool = False) -> Posted:
    return Posted(article_id, "out", "staff", kind, internal)


def test_customer_mail_and_staff_answers_are_news_notes_drafts_and_robots_are_not() -> None:
    assert is_news(customer(1)) and is_news(staff(2))
    assert not is_news(customer(3, kind="autoreply", author="system"))
    assert not is_news(customer(4, author="unverified")), "acts on nothing, holds nothing"
    assert not is_news(staff(5, kind="note", internal=True))
    assert not is_news(staff(6, kind="draft", internal=True))


def test_a_newer_staff_reply_holds_the_answer_in_hold_mode_and_warns_in_warn_mode() -> None:
    articles = [customer(10), staff(11), staff(12, kind="note", internal=True)]
    held = decide("hold", note=False, seen_article_id=10, articles=articles)
    assert (held.action, held.seen_article_id, held.newer) == ("hold", 10, (11,))
    warned = decide("warn", note=False, seen_article_id=10, articles=articles)
    assert (warned.action, warned.newer) == ("warn", (11,))
    assert decide("off", note=False, seen_article_id=10, articles=articles).action == "relay"


def test_a_newer_customer_message_collides_and_older_ones_do_not() -> None:
    articles = [customer(3), staff(4), customer(9), customer(7)]
    found = decide("hold", note=False, seen_article_id=4, articles=articles)
    assert found.action == "hold" and found.newer == (7, 9)  # in order, whatever the input
    clear = decide("hold", note=False, seen_article_id=9, articles=articles)
    assert clear.action == "relay" and not clear.unchecked


def test_a_note_never_collides_and_nothing_to_compare_is_recorded_not_held() -> None:
    articles = [customer(1), staff(2)]
    assert decide("hold", note=True, seen_article_id=1, articles=articles).action == "relay"
    unknown = decide("hold", note=False, seen_article_id=None, articles=articles)
    assert unknown.action == "relay" and unknown.unchecked and unknown.newer == ()


def test_the_answered_mail_is_in_reply_to_else_the_last_of_ours_in_references() -> None:
    ours = {"n1@x": 1, "n2@x": 5, "c1@x": 8}
    assert answered_mail("n2@x", ["n1@x", "n2@x"], ours) == "n2@x"
    assert answered_mail("theirs@y", ["n1@x", "c1@x", "theirs@y"], ours) == "c1@x"
    assert answered_mail(None, ["root@x", "n1@x"], ours) == "n1@x"
    assert answered_mail(None, [], ours) is None
    assert answered_mail("other@y", ["other@z"], ours) is None


def test_a_huge_references_header_costs_bounded_time() -> None:
    references = [f"r{n}@attacker.example" for n in range(200_000)]
    ours = {"n1@x": 1}
    last, first = [*references, "n1@x"], ["n1@x", *references]
    started = time.thread_time()  # CPU time of this thread: the same on a busy machine
    assert answered_mail(None, last, ours) == "n1@x"
    assert answered_mail(None, first, ours) is None  # only the last 100 are looked at
    assert time.thread_time() - started < 1.0
