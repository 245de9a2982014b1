"""The questions the FAQ does not answer, grouped: which entry would be worth writing next
(`mailbridge faq gaps`). Pure: questions in, clusters out.

Which questions are alike is the matcher's business, and the matcher is a parameter: for
each question, the others that would answer it. The default, `bm25_matcher`, is the FAQ's
own ranking (core/faq.py) with each question taken for an entry: B answers A when an entry
worded like B would be offered for A. Two questions are alike when either answers the other
(a short question rarely scores high against a long one's words, though the long one names
all of it). Clustering then picks, again and again, the question alike to the most of those
still ungrouped, and groups them under it: a group is what one entry written like its first
question would cover. Groups never chain (A like B, B like C, A unlike C), so one broad word
cannot gather everything.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from mailbridge.core.faq import THRESHOLD, FaqEntry, FaqIndex

MAX_QUESTIONS = 2000  # pairs are compared, so time grows with the square of this


@dataclass(frozen=True, slots=True)
class Question:
    """A customer's opening mail: what the FAQ would have been asked."""

    ticket: int
    subject: str
    text: str  # their own words, quote removed, cut short
    language: str | None


@dataclass(frozen=True, slots=True)
class Cluster:
    """Questions one entry could answer: the question alike to all the others first, then
    the others in the order they were given (most recent first)."""

    questions: tuple[Question, ...]

    @property
    def size(self) -> int:
        return len(self.questions)


# For each question (by index), the indices of the other questions that would answer it.
Matcher = Callable[[Sequence[Question]], Sequence[Collection[int]]]


def bm25_matcher(threshold: float = THRESHOLD, semantic: str = "off") -> Matcher:
    """The FAQ's ranking as a matcher: every question is an entry (its subject the title,
    its words the answer), ranked for every other question's subject and words; with
    `semantic = "lexicon"`, a question no other shares words with is ranked on concepts
    too, as a customer's mail is (core/faq.py)."""

    def answered_by(questions: Sequence[Question]) -> list[set[int]]:
        entries = [
            FaqEntry(str(n), q.subject, (), q.language, q.text) for n, q in enumerate(questions)
        ]
        index = FaqIndex.build(entries, semantic)
        found: list[set[int]] = []
        for n, question in enumerate(questions):
            asked = f"{question.subject}\n{question.text}"
            matches = index.rank(asked, question.language, threshold)
            if not [m for m in matches if m.entry.file != str(n)]:
                matches = index.rank_concepts(asked, question.language)
            found.append({int(m.entry.file) for m in matches} - {n})
        return found

    return answered_by


def cluster_questions(questions: Sequence[Question], matcher: Matcher) -> list[Cluster]:
    """The questions grouped by what would answer them, largest group first (equal ones:
    the one with the most recent question first); a question alike to none is a group of
    one. Give the questions most recent first."""
    alike: list[set[int]] = [set() for _ in questions]
    for asked, answering in enumerate(matcher(questions)):
        for n in answering:
            if n != asked and 0 <= n < len(questions):
                alike[n].add(asked)
                alike[asked].add(n)
    grouped: set[int] = set()
    clusters: list[list[int]] = []
    # Greedy cover, lazily: a count popped is checked against what is still ungrouped.
    heap = [(-len(others), n) for n, others in enumerate(alike)]
    heapq.heapify(heap)
    while heap:
        negative, n = heapq.heappop(heap)
        if n in grouped:
            continue
        covered = alike[n] - grouped
        if len(covered) < -negative:
            heapq.heappush(heap, (-len(covered), n))
            continue
        members = [n, *sorted(covered)]
        grouped.update(members)
        clusters.append(members)
    clusters.sort(key=lambda members: (-len(members), min(members)))
    return [Cluster(tuple(questions[n] for n in members)) for members in clusters]
