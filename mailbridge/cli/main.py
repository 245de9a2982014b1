"""The command line (a stable contract: operators and scripts rely on it).

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.

Each command is a module of this package that adds its subparser (`register`) and handles
it; this module holds the global options, the order of the commands and the dispatch.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from mailbridge import __version__
from mailbridge.cli import (
    config_check,
    db,
    faq,
    oauth,
    outbox,
    parse,
    purge,
    quarantine,
    rules,
    run,
    status,
    templates,
    tickets,
)
from mailbridge.cli.common import EXIT_FAILURE, EXIT_USAGE
from mailbridge.errors import ConfigError, MailbridgeError, TemplateError
from mailbridge.logs import setup_logging

# What mailbridge creates (the database and its WAL, backups, keys) is for its own user and
# group, whatever umask the shell, cron or a unit without UMask= handed it.
UMASK = 0o027

# In the order `mailbridge --help` lists them.
COMMANDS = (
    run,  # run, demo
    db,
    status,
    purge,
    config_check,
    parse,
    tickets,
    outbox,
    quarantine,
    templates,
    faq,
    oauth,
    rules,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailbridge",
        description="Turns a support mailbox into tickets: IMAP in, acknowledgements out, "
        "deadlines escalated.",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file (default: $MAILBRIDGE_CONFIG or ./mailbridge.toml)",
    )
    parser.add_argument(
        "--log-format", choices=("text", "json"), help="override service.log_format"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("--version", action="version", version=f"mailbridge {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(UMASK)  # first: before any command creates a file
    parser = build_parser()
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
