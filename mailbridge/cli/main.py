"""The command line (a stable contract: operators and scripts rely on it).

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

from mailbridge import __version__
from mailbridge.config import Config, config_path, load_config
from mailbridge.core.message import Address
from mailbridge.core.sla import parse_duration
from mailbridge.core.staff import requester_address, tag_name
from mailbridge.core.states import OutboxState
from mailbridge.errors import ConfigError, MailbridgeError, TemplateError
from mailbridge.logs import config_secrets, hide_secrets, setup_logging

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
# What mailbridge creates (the database and its WAL, backups, keys) is for its own user and
# group, whatever umask the shell, cron or a unit without UMask= handed it.
UMASK = 0o027

log = logging.getLogger("mailbridge")


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

    run = commands.add_parser("run", help="run the daemon")
    run.add_argument(
        "--once",
        action="store_true",
        help="one full pass (ingest, process, send, sweep), then exit",
    )

    demo = commands.add_parser("demo", help="embedded IMAP + SMTP + SQLite with sample mail")
    demo.add_argument("--dir", type=Path, help="keep the demo's database here (default: temporary)")
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="keep the demo daemon running after the tour, until Ctrl-C",
    )

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_commands.add_parser("upgrade", help="apply migrations")
    backup = db_commands.add_parser(
        "backup",
        help="a consistent copy of a running SQLite database (PostgreSQL: prints "
        "the pg_dump command)",
    )
    backup.add_argument("path", type=Path, metavar="PATH", help="where the copy goes (new file)")

    status = commands.add_parser(
        "status", help="the health picture, from the database (exit 1: something needs attention)"
    )
    status.add_argument("--json", action="store_true", help="print a JSON object")

    purge = commands.add_parser("purge", help="apply the [retention] policy now")
    purge.add_argument(
        "--dry-run", action="store_true", help="report what would be removed, remove nothing"
    )

    config = commands.add_parser("config", help="configuration")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    config_commands.add_parser("check", help="validate the configuration and templates")

    parse = commands.add_parser("parse", help="print the parsed, classified message(s) as JSON")
    parse.add_argument("files", nargs="+", metavar="FILE", help="email files, or - for stdin")

    tickets = commands.add_parser("tickets", help="list and show tickets")
    ticket_commands = tickets.add_subparsers(
        dest="tickets_command", metavar="ACTION", required=True
    )
    listing = ticket_commands.add_parser("list", help="list tickets")
    listing.add_argument("--status", help="only tickets with this status")
    listing.add_argument("--tag", help="only tickets with this tag (routing rules set tags)")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.add_argument(
        "--overdue",
        action="store_true",
        help="only tickets with a running deadline that has passed",
    )
    listing.add_argument(
        "--due-within",
        type=duration,
        metavar="DURATION",
        help="only tickets with a running deadline within this time, e.g. 2h",
    )
    show = ticket_commands.add_parser("show", help="one ticket with its articles and events")
    show.add_argument("number", type=int)
    show.add_argument("--json", action="store_true", help="print a JSON object")
    tag = ticket_commands.add_parser(
        "tag", help="add or remove tags of one ticket (as staff #tag/#untag do)"
    )
    tag.add_argument("number", type=int)
    tag.add_argument(
        "--add",
        action="append",
        default=[],
        type=tag_name,
        metavar="TAG",
        help="add this tag (repeat for more)",
    )
    tag.add_argument(
        "--remove",
        action="append",
        default=[],
        type=tag_name,
        metavar="TAG",
        help="remove this tag, in any case (repeat for more)",
    )
    requester = ticket_commands.add_parser(
        "requester", help="set who a ticket answers (as staff #requester does)"
    )
    requester.add_argument("number", type=int)
    requester.add_argument(
        "address",
        type=address,
        metavar="ADDRESS",
        help='someone@example.com, or "Ann Example <ann@example.com>"',
    )

    outbox = commands.add_parser("outbox", help="outgoing mail")
    outbox_commands = outbox.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    outbox_list = outbox_commands.add_parser("list", help="list outbox rows")
    outbox_list.add_argument("--state", choices=[state.value for state in OutboxState])
    outbox_list.add_argument("--json", action="store_true", help="print a JSON array")
    outbox_retry = outbox_commands.add_parser("retry", help="queue a failed row again")
    outbox_retry.add_argument("id", type=int)

    quarantine = commands.add_parser(
        "quarantine", help="messages whose processing kept failing, kept for a person"
    )
    quarantine_commands = quarantine.add_subparsers(
        dest="quarantine_command", metavar="ACTION", required=True
    )
    quarantine_list = quarantine_commands.add_parser("list", help="list quarantined messages")
    quarantine_list.add_argument("--json", action="store_true", help="print a JSON array")
    quarantine_show = quarantine_commands.add_parser("show", help="one message with its error")
    quarantine_show.add_argument("id", type=int)
    quarantine_show.add_argument("--raw", action="store_true", help="print the raw message")
    quarantine_retry = quarantine_commands.add_parser(
        "retry", help="process the message(s) again on the next pass"
    )
    quarantine_retry.add_argument("ids", type=int, nargs="*", metavar="ID")
    quarantine_retry.add_argument("--all", action="store_true", help="every quarantined message")

    templates = commands.add_parser("templates", help="reply templates")
    template_commands = templates.add_subparsers(
        dest="templates_command", metavar="ACTION", required=True
    )
    template_commands.add_parser("check", help="load and render every template")
    preview = template_commands.add_parser("preview", help="render one template")
    preview.add_argument("name")
    preview.add_argument("--ticket", type=int, help="use this ticket's values")
    preview.add_argument("--lang", help="language (default: templates.language)")

    faq = commands.add_parser("faq", help="FAQ answers offered in the acknowledgement")
    faq_commands = faq.add_subparsers(dest="faq_command", metavar="ACTION", required=True)
    faq_test = faq_commands.add_parser(
        "test", help="rank the [faq] dir entries for a question, as a new ticket would"
    )
    faq_test.add_argument("question", help="the customer's question, in quotes")
    faq_test.add_argument(
        "--json", action="store_true", help="print a JSON array of {file, title, score}, best first"
    )
    faq_test.add_argument(
        "--language",
        type=language_code,
        metavar="xx",
        help="the question's language (default: detected)",
    )

    oauth = commands.add_parser(
        "oauth", help="OAuth2 sign-in of a mailbox or the SMTP login (Microsoft 365, Gmail)"
    )
    oauth_commands = oauth.add_subparsers(dest="oauth_command", metavar="ACTION", required=True)
    for action, text in (
        (
            "login",
            "sign in (device code, browser or client credentials) and keep the refresh "
            "token in the data directory",
        ),
        (
            "test",
            "sign in to IMAP (and SMTP, when it shares the sign-in) now and say exactly "
            "what failed",
        ),
    ):
        oauth_action = oauth_commands.add_parser(action, help=text)
        which = oauth_action.add_mutually_exclusive_group(required=True)
        which.add_argument("--mailbox", metavar="NAME", help="the [[mailbox]] with this name")
        which.add_argument(
            "--smtp",
            action="store_true",
            help="the [smtp] login (when it has a sign-in of its own)",
        )

    rules = commands.add_parser("rules", help="routing rules ([[rule]] and [rules] include)")
    rules_commands = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    rules_test = rules_commands.add_parser(
        "test", help="show which rules a mail matches and what they would do"
    )
    rules_test.add_argument("files", nargs="+", metavar="FILE.eml", help='a mail ("-": stdin)')
    rules_test.add_argument(
        "--mailbox",
        help="as received by this mailbox (default: the one "
        "the mail is addressed to, else the first)",
    )
    rules_test.add_argument(
        "--followup", action="store_true", help="as a follow-up on an open ticket"
    )
    rules_test.add_argument(
        "--unanswered",
        type=int,
        default=1,
        metavar="N",
        help="with --followup: the customer's mails since our last reply, "
        "this one included (default 1)",
    )
    rules_test.add_argument(
        "--open-tickets",
        type=int,
        default=1,
        metavar="N",
        help="the customer's open tickets, this mail's included (default 1)",
    )
    rules_test.add_argument("--json", action="store_true", help="print JSON, one per file")
    return parser


def duration(text: str) -> timedelta:
    """An argument like 30m, 2h or 1d (argparse names this function in its error)."""
    return parse_duration(text)


def address(text: str) -> Address:
    """One address, as #requester takes it (argparse names this function in its error)."""
    found = requester_address(text)
    if found is None:
        raise ValueError(text)
    return found


def language_code(text: str) -> str:
    """A two-letter language code such as it or en (argparse names this function)."""
    if not re.fullmatch(r"[a-z]{2}", text):
        raise ValueError(text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(UMASK)  # first: before any command creates a file
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_format or "text", verbose=args.verbose)
    handler = _HANDLERS[args.command]
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


def _config(args: argparse.Namespace) -> Config:
    config = load_config(config_path(args.config))
    hide_secrets(config_secrets(config))
    if args.log_format is None and config.service.log_format != "text":
        setup_logging(config.service.log_format, verbose=args.verbose)
    return config


def _run(args: argparse.Namespace) -> int:
    from mailbridge.app import build_app
    from mailbridge.service.daemon import Daemon
    from mailbridge.service.systemd import Service

    path = config_path(args.config)
    app = build_app(_config(args))
    try:
        daemon = Daemon(app)
        if args.once:
            report = asyncio.run(daemon.run_once())
            log.info(
                "pass done: fetched %d, tickets created %d, acknowledgements queued %d, "
                "sent %d, deferred %d, failed %d, escalated %d",
                sum(report.fetched.values()),
                report.processed.created,
                report.processed.acknowledged,
                report.sent.sent,
                report.sent.deferred,
                report.sent.failed,
                report.escalated,
            )
            return EXIT_OK if report.ok else EXIT_FAILURE
        asyncio.run(Service.from_environ(daemon, path).run())
        return EXIT_OK
    finally:
        app.close()


def _demo(args: argparse.Namespace) -> int:
    from mailbridge.demo import EXTRA_MODULES, INSTALL

    try:  # here, not at the top: the daemon runs without the demo extra
        from mailbridge.demo.run import run_demo
    except ModuleNotFoundError as exc:
        package = (exc.name or "").partition(".")[0]
        if package not in EXTRA_MODULES:
            raise
        print(
            f"mailbridge: the demo needs {package}, from the demo extra: {INSTALL}", file=sys.stderr
        )
        return EXIT_FAILURE
    return run_demo(args.dir, keep_running=args.keep_running)


def _db(args: argparse.Namespace) -> int:
    from mailbridge.db import migrate
    from mailbridge.db.engine import make_engine

    config = _config(args)
    if args.db_command == "backup":
        from mailbridge.db.backup import backup

        print(backup(config.database_url, args.path))
        return EXIT_OK
    engine = make_engine(config.database_url)
    try:
        migrate.upgrade(engine)
        print(f"database at revision {migrate.current_revision(engine)}")
    finally:
        engine.dispose()
    return EXIT_OK


def _config_check(args: argparse.Namespace) -> int:
    from mailbridge.service.reload import load_templates

    config = _config(args)
    templates = load_templates(config)
    print(
        f"{config.source}: ok ({len(config.mailbox)} mailbox(es), {len(config.sla)} SLA "
        f"policies, templates in {', '.join(sorted(templates.languages()))})"
    )
    return EXIT_OK


def _parse(args: argparse.Namespace) -> int:
    from mailbridge.cli.parse import parse_files

    config = load_config(config_path(args.config)) if args.config else None
    return parse_files(args.files, config, sys.stdout)


def _tickets(args: argparse.Namespace) -> int:
    from mailbridge.cli import tickets as reports

    with reports.open_app(_config(args)) as app:
        if args.tickets_command == "list":
            return reports.list_tickets(
                app,
                args.status,
                args.json,
                sys.stdout,
                overdue=args.overdue,
                due_within=args.due_within,
                tag=args.tag,
            )
        if args.tickets_command == "tag":
            return reports.tag_ticket(app, args.number, args.add, args.remove, sys.stdout)
        if args.tickets_command == "requester":
            return reports.set_ticket_requester(app, args.number, args.address, sys.stdout)
        return reports.show_ticket(app, args.number, args.json, sys.stdout)


def _outbox(args: argparse.Namespace) -> int:
    from mailbridge.cli import tickets as reports

    with reports.open_app(_config(args)) as app:
        if args.outbox_command == "list":
            return reports.list_outbox(app, args.state, args.json, sys.stdout)
        return reports.retry_outbox(app, args.id, sys.stdout)


def _quarantine(args: argparse.Namespace) -> int:
    from mailbridge.cli import quarantine

    with quarantine.open_app(_config(args)) as app:
        if args.quarantine_command == "list":
            return quarantine.list_quarantined(app, args.json, sys.stdout)
        if args.quarantine_command == "show":
            return quarantine.show_quarantined(app, args.id, args.raw, sys.stdout)
        return quarantine.retry_quarantined(app, args.ids, args.all, sys.stdout)


def _templates(args: argparse.Namespace) -> int:
    from mailbridge.cli import tickets as reports

    config = _config(args)
    if args.templates_command == "check":
        return reports.check_templates(config, sys.stdout)
    return reports.preview_template(config, args.name, args.ticket, args.lang, sys.stdout)


def _status(args: argparse.Namespace) -> int:
    from mailbridge.cli import tickets as reports
    from mailbridge.cli.status import print_status

    with reports.open_app(_config(args)) as app:
        return print_status(app, args.json, sys.stdout)


def _purge(args: argparse.Namespace) -> int:
    from mailbridge.cli import tickets as reports
    from mailbridge.tickets.retention import purge

    with reports.open_app(_config(args)) as app:
        if app.config.retention.purge_after is None:
            print(f"{app.config.source}: retention.purge_after is not set: everything is kept")
            return EXIT_OK
        report = purge(app, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb}: {report.summary()}" if report.anything else "nothing to remove")
    return EXIT_OK


def _faq(args: argparse.Namespace) -> int:
    from mailbridge.adapters.faq_files import load_index, threshold
    from mailbridge.core.faq import rank_mail
    from mailbridge.core.language import detect_language

    config = _config(args)
    index = load_index(config)
    if index is None:
        raise ConfigError(
            f"{config.source}: no FAQ folder: set [faq] dir to a folder of "
            "FAQ entries (one Markdown file each)"
        )
    language = args.language or detect_language(args.question)
    matches = rank_mail(index, "", args.question, language, threshold(config))
    if args.json:
        print(
            json.dumps(
                [{"file": m.entry.file, "title": m.entry.title, "score": m.score} for m in matches],
                ensure_ascii=False,
                indent=2,
            )
        )
        return EXIT_OK
    if not matches:
        print("no entry answers this closely enough")
        return EXIT_OK
    width = max(len("file"), *(len(m.entry.file) for m in matches))
    print(f"{'score':<6}  {'file':<{width}}  title")
    for match in matches:
        print(f"{match.score:<6.4f}  {match.entry.file:<{width}}  {match.entry.title}")
    return EXIT_OK


def _rules(args: argparse.Namespace) -> int:
    from mailbridge.cli.rules import explain_files

    return explain_files(
        _config(args),
        args.files,
        sys.stdout,
        mailbox=args.mailbox,
        followup=args.followup,
        unanswered=args.unanswered,
        as_json=args.json,
        open_tickets=args.open_tickets,
    )


def _oauth(args: argparse.Namespace) -> int:
    from mailbridge.cli.oauth import oauth_login, oauth_test

    config = _config(args)
    if args.oauth_command == "login":
        return oauth_login(config, args.mailbox, sys.stdout, sys.stdin)
    return oauth_test(config, args.mailbox, sys.stdout)


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run,
    "demo": _demo,
    "db": _db,
    "config": _config_check,
    "parse": _parse,
    "tickets": _tickets,
    "outbox": _outbox,
    "quarantine": _quarantine,
    "templates": _templates,
    "status": _status,
    "purge": _purge,
    "faq": _faq,
    "rules": _rules,
    "oauth": _oauth,
}
