"""`mailbridge tickets search WORDS`: the tickets whose subject, articles or attachment
names hold every word, best first, each with a snippet of where they matched."""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import asdict
from typing import TextIO

from mailbridge.app import App
from mailbridge.cli.common import print_json, table
from mailbridge.core.search_text import MAX_QUERY_CHARS, MAX_WORDS, search_words
from mailbridge.core.states import TicketStatus
from mailbridge.tickets.search import EMPTY_QUERY, MAX_LIMIT, search_tickets

_SEARCHABLE = [status.value for status in TicketStatus if status is not TicketStatus.MERGED]


def configure_search(ticket_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    search = ticket_commands.add_parser(
        "search",
        help="full-text search over subjects, articles and attachment names",
        description=(
            "Find the tickets holding every word (at most "
            f"{MAX_WORDS} words of the first {MAX_QUERY_CHARS} characters). "
            "Words are plain text: quotes, *, -, OR and NEAR are not operators."
        ),
    )
    search.add_argument("words", help='the words to find, e.g. "fattura marzo"')
    search.add_argument("--status", choices=_SEARCHABLE, help="only tickets with this status")
    search.add_argument(
        "--limit",
        type=_limit,
        default=20,
        metavar="N",
        help=f"at most N tickets (default 20, at most {MAX_LIMIT})",
    )
    search.add_argument("--json", action="store_true", help="print a JSON array")


def _limit(value: str) -> int:
    number = int(value)
    if not 1 <= number <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"give a number from 1 to {MAX_LIMIT}")
    return number


def run_search(args: argparse.Namespace, app: App, out: TextIO) -> int:
    """Print the hits; a query without a word prints why on stderr (and [] with --json)."""
    if not search_words(args.words):
        sys.stderr.write(f"mailbridge: {EMPTY_QUERY}\n")
        if args.json:
            print_json([], out)
        return 2
    with app.sessions() as session:
        hits = search_tickets(session, args.words, status=args.status, limit=args.limit)
    if args.json:
        print_json([asdict(hit) for hit in hits], out)
        return 0
    rows = [(f"#{h.number}", h.status, h.requester, h.subject) for h in hits]
    rendered = io.StringIO()
    table(("TICKET", "STATUS", "REQUESTER", "SUBJECT"), rows, rendered)
    lines = rendered.getvalue().splitlines()
    out.write(lines[0] + "\n")
    for line, hit in zip(lines[1:], hits, strict=False):
        out.write(f"{line}\n    {hit.snippet}\n")
    return 0
