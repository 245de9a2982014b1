"""`mailbridge faq stats` and `mailbridge faq gaps`: what became of the FAQ answers
acknowledgements offered, per entry, and the questions no answer was offered for, grouped
by the FAQ's own matcher (reports/faq_use.py, core/faq_stats.py, core/faq_gaps.py).

The JSON of both is a contract; fields may be added, never renamed or removed:
`stats --json`: {"from", "to", "entries": [{"file", "title", "in_folder", "offered",
"solved", "staff", "quiet", "open"}]}; `gaps --json`: {"from", "to", "questions", "read",
"answered_now", "alone", "groups": [{"count", "tickets", "examples": [{"ticket",
"subject"}]}]}. Times in ISO 8601 UTC.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, TextIO

from mailbridge.cli.common import EXIT_OK, command_config, iso, open_app, print_json, table
from mailbridge.core.faq_gaps import MAX_QUESTIONS
from mailbridge.core.report import Period, period_since
from mailbridge.core.safe_text import clean_header_text

if TYPE_CHECKING:
    from mailbridge.app import App
    from mailbridge.core.faq_gaps import Cluster, Question

DEFAULT_SINCE = timedelta(days=30)
GAPS_SHOWN = 20
EXAMPLES = 3  # subjects shown of each group


def question_limit(text: str) -> int:
    """How many questions `faq gaps` reads (argparse names this function in its error)."""
    value = int(text)
    if not 1 <= value <= MAX_QUESTIONS:
        raise ValueError(text)
    return value


def group_count(text: str) -> int:
    """How many groups `faq gaps` shows (argparse names this function in its error)."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def run_stats(args: argparse.Namespace) -> int:
    with open_app(command_config(args)) as app:
        return print_stats(app, period_since(app.clock.now(), args.since), sys.stdout, args.json)


def print_stats(app: App, period: Period, out: TextIO, as_json: bool) -> int:
    """Per entry, how often it was offered in `period` and how each offer ended."""
    from mailbridge.core.faq_stats import OUTCOMES, entry_uses
    from mailbridge.reports.faq_use import offers_since

    index = app.faq
    titles = {e.file: e.title for e in index.entries} if index is not None else {}
    now = app.clock.now()
    uses = entry_uses(offers_since(app, period.start, period.end), now, titles)
    entries = [
        {
            "file": use.file,
            "title": clean_header_text(titles.get(use.file, "")),
            "in_folder": use.file in titles,
            "offered": use.offered,
            **use.outcomes,
        }
        for use in uses
    ]
    if as_json:
        print_json({"from": iso(period.start), "to": iso(period.end), "entries": entries}, out)
        return EXIT_OK
    out.write(
        f"FAQ answers offered from {period.start:%Y-%m-%d %H:%M} to "
        f"{period.end:%Y-%m-%d %H:%M} UTC, and how each offer ended.\n\n"
    )
    table(
        ["file", "offered", *OUTCOMES, "title"],
        [
            [
                str(e["file"]),
                *(str(e[key]) for key in ("offered", *OUTCOMES)),
                str(e["title"]) if e["in_folder"] else "(not in the FAQ folder now)",
            ]
            for e in entries
        ],
        out,
        right=range(1, 2 + len(OUTCOMES)),
    )
    out.write(
        "\nsolved: the customer wrote it was solved before any staff answer; staff: a staff "
        "member still\nanswered; quiet: the customer wrote nothing more for the queue's "
        "close_after (else\nrating_lifetime) after the offer; open: too early to tell, or "
        "waiting for an answer.\nAn offer of several entries counts for each.\n"
    )
    return EXIT_OK


def run_gaps(args: argparse.Namespace) -> int:
    with open_app(command_config(args)) as app:
        period = period_since(app.clock.now(), args.since)
        return print_gaps(app, period, sys.stdout, args.json, limit=args.limit, top=args.top)


def print_gaps(
    app: App, period: Period, out: TextIO, as_json: bool, *, limit: int, top: int = GAPS_SHOWN
) -> int:
    """The questions of `period` that were offered no FAQ answer, and that the FAQ folder
    does not answer now either, grouped by the FAQ's matcher, largest group first."""
    from mailbridge.adapters.faq_files import threshold
    from mailbridge.core.faq_gaps import bm25_matcher, cluster_questions
    from mailbridge.reports.faq_use import unanswered_questions

    questions, total = unanswered_questions(app, period.start, limit)
    still = _not_answered_now(app, questions)
    # A model's ranking is for customers' mail; gaps are grouped on words and concepts.
    semantic = "off" if app.config.faq.semantic == "off" else "lexicon"
    clusters = cluster_questions(still, bm25_matcher(threshold(app.config), semantic))
    groups = [c for c in clusters if c.size > 1][:top]
    alone = sum(1 for c in clusters if c.size == 1)
    if as_json:
        document = {
            "from": iso(period.start),
            "to": iso(period.end),
            "questions": total,
            "read": len(questions),
            "answered_now": len(questions) - len(still),
            "alone": alone,
            "groups": [_group_json(c) for c in groups],
        }
        print_json(document, out)
        return EXIT_OK
    answered_now = (
        f", {len(questions) - len(still)} of them answered by the FAQ folder now"
        if app.faq is not None
        else ""
    )
    out.write(
        f"Opening mails from {period.start:%Y-%m-%d %H:%M} to {period.end:%Y-%m-%d %H:%M} UTC "
        f"offered no FAQ answer: {total}; the {len(questions)} most recent read{answered_now}."
        "\n\n"
    )
    if not groups:
        out.write("(no two questions alike)\n")
    for cluster in groups:
        for n, question in enumerate(cluster.questions[:EXAMPLES]):
            count = f"{cluster.size:>5}" if n == 0 else " " * 5
            out.write(f"{count}  #{question.ticket:<6} {_subject(question)[:90]}\n")
        if cluster.size > EXAMPLES:
            out.write(f"{'':5}  … and {cluster.size - EXAMPLES} more\n")
    out.write(f"\n{alone} question(s) alike to no other are not listed.\n")
    return EXIT_OK


def _not_answered_now(app: App, questions: list[Question]) -> list[Question]:
    """The questions the FAQ folder, as it is now, offers nothing for."""
    from mailbridge.adapters.faq_files import suggest

    index = app.faq
    if index is None:
        return questions
    return [q for q in questions if not suggest(app.config, index, q.subject, q.text, q.language)]


def _group_json(cluster: Cluster) -> dict[str, object]:
    return {
        "count": cluster.size,
        "tickets": [q.ticket for q in cluster.questions],
        "examples": [
            {"ticket": q.ticket, "subject": _subject(q)} for q in cluster.questions[:EXAMPLES]
        ],
    }


def _subject(question: Question) -> str:
    return clean_header_text(question.subject) or "(no subject)"
