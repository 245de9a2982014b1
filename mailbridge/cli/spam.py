"""`mailbridge spam`: the blocklist and the allowlist (tickets/sender_lists.py).

`block` and `allow` add a pattern to the `sender_rule` table (or turn its row into the
other kind), `unblock` removes its row whichever kind it is, and `list` shows every pattern
with where it comes from: the configuration, an included file, or the table. The allowlist
beats the blocklist, wherever each pattern comes from.

The JSON of `spam list --json` is a contract: a list of {"pattern", "kind" ("block" or
"allow"), "source" ("config", "include" or "table"), "file" (the configuration or included
file; null for the table), "created_at", "created_by", "note" (null but for the table)}.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mailbridge.cli.common import command_config, iso, open_app, print_json, table
from mailbridge.core.spam import normalize_pattern
from mailbridge.errors import MailbridgeError

if TYPE_CHECKING:
    from mailbridge.app import App

BY = "command line"


def _pattern(text: str) -> str:
    """Any pattern the table may hold a row of (for `unblock`)."""
    try:
        return normalize_pattern(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _table_pattern(text: str) -> str:
    """A pattern of a shape the table looks up by (tickets/sender_lists.py)."""
    from mailbridge.tickets.sender_lists import table_pattern

    try:
        return table_pattern(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def configure(spam: argparse.ArgumentParser) -> None:
    actions = spam.add_subparsers(dest="spam_command", metavar="ACTION", required=True)
    for name, line in (
        ("block", "block an address, a domain (and its subdomains) or a simple pattern"),
        ("allow", "allow one: the allowlist beats the blocklist and the filter's verdict"),
        ("unblock", "remove a pattern from the table, blocked or allowed"),
    ):
        action = actions.add_parser(name, help=line)
        action.add_argument(
            "pattern",
            type=_pattern if name == "unblock" else _table_pattern,
            metavar="ADDR|DOMAIN",
            help='ann@example.com, spam.example, or "*@spam.example", "*@*.spam.example", '
            '"*.spam.example", "noreply@*"',
        )
        action.add_argument("--note", help="why, kept with the pattern and in the event")
    listing = actions.add_parser("list", help="every pattern and where it comes from")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    spam.set_defaults(handler=_spam)


def _spam(args: argparse.Namespace) -> int:
    with open_app(command_config(args)) as app:
        return run_spam(args, app, sys.stdout)


def run_spam(args: argparse.Namespace, app: App, out: TextIO) -> int:
    if args.spam_command == "list":
        return list_senders(app, out, as_json=args.json)
    return change_sender(app, args.spam_command, args.pattern, args.note, out)


def change_sender(app: App, action: str, pattern: str, note: str | None, out: TextIO) -> int:
    """Block, allow or unblock `pattern` in the table; say what holds now."""
    from mailbridge.tickets.sender_lists import (
        allow_sender,
        block_sender,
        listed_senders,
        unblock_sender,
    )

    change = {"block": block_sender, "allow": allow_sender, "unblock": unblock_sender}[action]
    with app.transaction() as session:
        done = change(session, pattern, BY, note, app.clock.now())
        listed = listed_senders(session, app.config)
    configured = [e for e in listed if e.pattern == pattern and e.source != "table"]
    if action == "unblock" and done.previous is None:
        where = "; ".join(f"{e.kind} in {e.file}" for e in configured)
        if where:
            raise MailbridgeError(f"{pattern} is not in the table; remove it there: {where}")
        raise MailbridgeError(f"{pattern} is neither blocked nor allowed")
    was = f" (was {done.previous})" if done.previous and done.previous != done.kind else ""
    out.write(f"{pattern}: {done.kind or 'removed'}{was}\n")
    if action == "block":
        allowed = _allowed_by(pattern, [e.pattern for e in listed if e.kind == "allow"])
        if allowed:
            out.write(f"note: {pattern} stays allowed by {allowed}; the allowlist wins\n")
    return 0


def _allowed_by(pattern: str, allow: list[str]) -> str | None:
    """The allow pattern that keeps this address's mail from being blocked, if any."""
    from mailbridge.core.spam import first_match

    if "@" not in pattern or set("*?[") & set(pattern):
        return None
    return first_match(pattern, allow)


def list_senders(app: App, out: TextIO, *, as_json: bool) -> int:
    from mailbridge.tickets.sender_lists import listed_senders

    with app.sessions() as session:
        listed = listed_senders(session, app.config)
    rows = [{**asdict(e), "created_at": iso(e.created_at)} for e in listed]
    if as_json:
        print_json(rows, out)
        return 0
    # The files' full paths are in the JSON; a table cell shows 48 characters.
    table(
        ["PATTERN", "KIND", "SOURCE", "ADDED BY", "NOTE"],
        [
            [
                e.pattern,
                e.kind,
                f"include {Path(e.file).name}" if e.source == "include" and e.file else e.source,
                e.created_by or "-",
                e.note or "",
            ]
            for e in listed
        ],
        out,
    )
    return 0
