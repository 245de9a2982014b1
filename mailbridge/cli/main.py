"""The command line (a stable contract: operators and scripts rely on it).

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.

Each command is a module of this package with a `configure(parser)` that adds its options
and handler. This module holds the global options, the commands in their order with the
line `mailbridge --help` gives each, and the dispatch. Only the module of the command being
run is imported, so `mailbridge --help` or `mailbridge parse` does not load the database,
HTTP and IMAP libraries the other commands need.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Collection, Sequence

from mailbridge import __version__, heap
from mailbridge.errors import ConfigError, MailbridgeError, TemplateError
from mailbridge.logs import setup_logging

# What mailbridge creates (the database and its WAL, backups, keys) is for its own user and
# group, whatever umask the shell, cron or a unit without UMask= handed it.
UMASK = 0o027

# (command, module under mailbridge.cli, its line in `mailbridge --help`), in that order.
COMMANDS = (
    ("run", "run", "run the daemon"),
    ("demo", "demo", "embedded IMAP + SMTP + SQLite with sample mail"),
    ("db", "db", "database maintenance"),
    (
        "status",
        "status",
        "the health picture, from the database (exit 1: something needs attention)",
    ),
    ("purge", "purge", "apply the [retention] policy now"),
    ("storage", "storage", "attachments and raw mail kept as files: check them, move them"),
    ("config", "config_check", "configuration"),
    ("parse", "parse", "print the parsed, classified message(s) as JSON"),
    ("tickets", "tickets", "list and show tickets"),
    ("customer", "customer", "everything held about a customer's address: export it, erase it"),
    ("report", "report", "how fast and how well tickets were answered, per week, queue, …"),
    ("staff", "staff", "staff addresses, who is away, who gets the daily digest"),
    ("outbox", "outbox", "outgoing mail"),
    ("quarantine", "quarantine", "messages whose processing kept failing, kept for a person"),
    ("ignored", "ignored", "mail stored without a ticket (autoreplies, rules, spam), and release"),
    ("templates", "templates", "reply templates"),
    ("faq", "faq", "FAQ answers offered in the acknowledgement"),
    ("oauth", "oauth", "OAuth2 sign-in of a mailbox or the SMTP login (Microsoft 365, Gmail)"),
    ("rules", "rules", "routing rules ([[rule]] and [rules] include)"),
    ("spam", "spam", "the blocklist and allowlist ([spam] block/allow/include and the table)"),
)


def _global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file (default: $MAILBRIDGE_CONFIG or ./mailbridge.toml)",
    )
    parser.add_argument(
        "--log-format", choices=("text", "json"), help="override service.log_format"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")


def build_parser(only: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `only`, the other commands are listed but not loaded."""
    parser = argparse.ArgumentParser(
        prog="mailbridge",
        description="Turns a support mailbox into tickets: IMAP in, acknowledgements out, "
        "deadlines escalated.",
    )
    _global_options(parser)
    parser.add_argument("--version", action="version", version=f"mailbridge {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module, line in COMMANDS:
        command = commands.add_parser(name, help=line)
        if only is None or name in only:
            importlib.import_module(f"mailbridge.cli.{module}").configure(command)
    return parser


def command_named(argv: Sequence[str]) -> str | None:
    """The command `argv` names, read past the global options (None: it names none)."""
    reader = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    _global_options(reader)
    try:
        _known, rest = reader.parse_known_args(argv)
    except argparse.ArgumentError:  # a bad global option: the whole parser says what is wrong
        return None
    return next((word for word in rest if not word.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(UMASK)  # first: before any command creates a file
    argv = sys.argv[1:] if argv is None else list(argv)
    named = command_named(argv)
    with heap.loading():  # the command's modules and what they import (mailbridge/heap.py)
        from mailbridge.cli.common import EXIT_FAILURE, EXIT_USAGE

        parser = build_parser(only=() if named is None else (named,))
    args = parser.parse_args(argv)
    setup_logging(args.log_format or "text", verbose=args.verbose)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"mailbridge: configuration error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except TemplateError as exc:
        print(f"mailbridge: template error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except MailbridgeError as exc:
        print(f"mailbridge: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE
