"""`mailbridge faq test`: rank the [faq] dir entries for a question, as a new ticket would."""

from __future__ import annotations

import argparse
import json

from mailbridge.cli.common import EXIT_OK, command_config, language_code
from mailbridge.core.faq import Match
from mailbridge.errors import ConfigError


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
    faq.set_defaults(handler=_faq)


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
