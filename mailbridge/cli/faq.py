"""`mailbridge faq`: rank the [faq] dir entries for a question, as a new ticket would
(`test`); list the drafts staff saved with `#faq save` (`drafts`); what became of the
answers offered (`stats`) and the questions none answered (`gaps`, both in cli/faq_use.py).

The JSON of `drafts --json` is a contract: a list of {"file", "title", "language",
"ticket", "saved" (YYYY-MM-DD), "status", "problem" ("" unless the file cannot be read)}.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, TextIO

from mailbridge.cli.common import (
    EXIT_OK,
    command_config,
    duration,
    language_code,
    print_json,
    table,
)
from mailbridge.cli.faq_use import (
    DEFAULT_SINCE,
    GAPS_SHOWN,
    group_count,
    question_limit,
    run_gaps,
    run_stats,
)
from mailbridge.core.faq import Match
from mailbridge.errors import ConfigError

if TYPE_CHECKING:
    from mailbridge.config import Config


def configure(faq: argparse.ArgumentParser) -> None:
    faq_commands = faq.add_subparsers(dest="faq_command", metavar="ACTION", required=True)
    faq_test = faq_commands.add_parser(
        "test", help="rank the [faq] dir entries for a question, as a new ticket would"
    )
    faq_test.add_argument("question", help="the customer's question, in quotes")
    faq_test.add_argument(
        "--json",
        action="store_true",
        help="print a JSON array of {file, title, score, how, shared, cutoff}, best first",
    )
    faq_test.add_argument(
        "--language",
        type=language_code,
        metavar="xx",
        help="the question's language (default: detected)",
    )
    faq_test.set_defaults(handler=_faq)
    drafts = faq_commands.add_parser(
        "drafts", help='the draft entries staff saved with #faq save "Title", newest first'
    )
    drafts.add_argument("--json", action="store_true", help="print a JSON array")
    drafts.set_defaults(handler=_drafts)
    stats = faq_commands.add_parser(
        "stats", help="per entry: how often it was offered, and how each offer ended"
    )
    _since(stats)
    stats.add_argument("--json", action="store_true", help="print a JSON object")
    stats.set_defaults(handler=run_stats)
    gaps = faq_commands.add_parser(
        "gaps", help="the questions most often asked that no FAQ answer was offered for"
    )
    _since(gaps)
    gaps.add_argument(
        "--limit",
        type=question_limit,
        default=1000,
        metavar="N",
        help="read the N most recent questions (1000; at most 2000, which takes some seconds)",
    )
    gaps.add_argument(
        "--top", type=group_count, default=GAPS_SHOWN, metavar="N", help="show N groups (20)"
    )
    gaps.add_argument("--json", action="store_true", help="print a JSON object")
    gaps.set_defaults(handler=run_gaps)


def _since(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since",
        type=duration,
        default=DEFAULT_SINCE,
        metavar="DURATION",
        help="the period up to now, e.g. 30d (the default) or 12w",
    )


def _faq(args: argparse.Namespace) -> int:
    from mailbridge.adapters.faq_files import load_index, threshold
    from mailbridge.core.faq import rank_mail
    from mailbridge.core.language import detect_language

    config = command_config(args)
    index = load_index(config)
    if index is None:
        raise ConfigError(
            f"{config.source}: no FAQ folder: set [faq] dir to a folder of "
            "FAQ entries (one Markdown file each)"
        )
    language = args.language or detect_language(args.question)
    matches = rank_mail(index, "", args.question, language, threshold(config))
    if args.json:
        print(json.dumps([_explained(m) for m in matches], ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"question language: {language or 'unknown'}; semantic: {index.semantic}")
    if not matches:
        print("no entry answers this closely enough")
        return EXIT_OK
    width = max(len("file"), *(len(m.entry.file) for m in matches))
    print(f"{'score':<6}  {'cut-off':<7}  {'by':<8}  {'file':<{width}}  title")
    for match in matches:
        print(
            f"{match.score:<6.4f}  {match.cutoff:<7.2f}  {match.how:<8}  "
            f"{match.entry.file:<{width}}  {match.entry.title}"
        )
        if match.shared:
            print(f"{'':<6}  shared: {', '.join(_readable(t) for t in match.shared)}")
    return EXIT_OK


def _explained(match: Match) -> dict[str, object]:
    return {
        "file": match.entry.file,
        "title": match.entry.title,
        "score": match.score,
        "how": match.how,
        "shared": [_readable(t) for t in match.shared],
        "cutoff": match.cutoff,
    }


def _readable(term: str) -> str:
    """A stem as it is; a concept ("~card") as "card (concept)"."""
    return f"{term[1:]} (concept)" if term.startswith("~") else term


def _drafts(args: argparse.Namespace) -> int:
    return list_drafts(command_config(args), sys.stdout, as_json=args.json)


def list_drafts(config: Config, out: TextIO, *, as_json: bool) -> int:
    """The drafts in `[faq] drafts_dir`, newest first; a file that cannot be read is listed
    with what is wrong with it."""
    from mailbridge.adapters.faq_drafts import read_drafts
    from mailbridge.core.safe_text import clean_header_text

    rows = []
    for found in read_drafts(config.faq_drafts_dir):
        entry = found.entry
        rows.append(
            {
                "file": found.file,
                "title": clean_header_text(entry.title) if entry else "",
                "language": entry.language if entry else None,
                "ticket": entry.ticket if entry else None,
                "saved": entry.saved.isoformat() if entry and entry.saved else None,
                "status": entry.status if entry else None,
                "problem": found.problem,
            }
        )
    rows.sort(key=lambda row: str(row["saved"] or ""), reverse=True)  # stable: by name within
    if as_json:
        print_json(rows, out)
        return EXIT_OK
    out.write(f"Draft FAQ entries in {config.faq_drafts_dir}:\n\n")
    table(
        ["file", "saved", "ticket", "lang", "status", "title"],
        [
            [
                str(row["file"]),
                str(row["saved"] or "-"),
                f"#{row['ticket']}" if row["ticket"] else "-",
                str(row["language"] or "-"),
                str(row["status"] or "-"),
                str(row["title"] or f"(cannot be read: {row['problem']})"),
            ]
            for row in rows
        ],
        out,
    )
    if rows:
        out.write(
            "\nTo offer one: review it, move it into the [faq] dir, remove its "
            "'status: draft' line\n(or write status: live), then reload mailbridge.\n"
        )
    return EXIT_OK
