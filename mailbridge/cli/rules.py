"""`mailbridge rules test FILE.eml`: which routing rules a mail matches and what they would
do, as the processing path would evaluate them."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from mailbridge.cli.common import command_config
from mailbridge.cli.parse import MailFiles
from mailbridge.config import Config
from mailbridge.core.classify import classify
from mailbridge.core.message import ParsedMessage
from mailbridge.core.parse import parse_message
from mailbridge.core.rules import evaluate
from mailbridge.errors import ConfigError
from mailbridge.inbound.routing import actions_dict, described, facts_for, summary


@dataclass(frozen=True, slots=True)
class Supposed:
    """What a mail file cannot tell and `rules test` supposes: the mailbox that received it
    (None: the one it is addressed to, else the first), whether it follows up an open
    ticket, the customer's mails since our last reply and their open tickets."""

    mailbox: str | None = None
    followup: bool = False
    unanswered: int = 1
    open_tickets: int = 1


def explain_files(
    config: Config, files: Sequence[str], out: TextIO, supposed: Supposed, *, as_json: bool
) -> int:
    """One report per file; exits 1 when a file could not be read."""
    from mailbridge.app import identity_for

    mailbox = supposed.mailbox
    if mailbox is not None and mailbox not in {m.name for m in config.mailbox}:
        raise ConfigError(
            f"{config.source}: mailbox: expected one of "
            f"{', '.join(m.name for m in config.mailbox)}, not {mailbox!r}"
        )
    identity = identity_for(config)
    by_name = {rule.name: rule for rule in config.routing}
    inputs = MailFiles(files)
    for name, raw in inputs:
        parsed = parse_message(raw)
        verdict = classify(parsed, identity)
        facts = facts_for(
            parsed,
            mailbox or _mailbox_for(config, parsed),
            followup=supposed.followup,
            unanswered=max(supposed.unanswered, 1),
            open_tickets=max(supposed.open_tickets, 1),
        )
        decision = evaluate(config.routing, facts)
        report: dict[str, Any] = {
            "file": name,
            "kind": verdict.kind,
            "language": facts.language,
            "mailbox": facts.mailbox,
            "matched": [
                {"rule": rule, "actions": described(by_name[rule])} for rule in decision.matched
            ],
            "actions": actions_dict(decision.actions),
        }
        if as_json:
            print(json.dumps(report, ensure_ascii=False, indent=2), file=out)
        else:
            _print(report, len(config.routing), out)
    return inputs.status


def _mailbox_for(config: Config, parsed: ParsedMessage) -> str:
    """The mailbox the mail was written to, else the first one."""
    written_to = {a.address.lower() for a in (*parsed.to, *parsed.cc)}
    for mailbox in config.mailbox:
        if mailbox.address.lower() in written_to:
            return mailbox.name
    return config.mailbox[0].name


def _print(report: dict[str, Any], rules: int, out: TextIO) -> None:
    matched = report["matched"]
    print(
        f"{report['file']}: {len(matched)} of {rules} rule(s) match "
        f"(mailbox {report['mailbox']}, language {report['language'] or 'unknown'})",
        file=out,
    )
    if report["kind"] != "customer":
        print(
            f"  note: classified as {report['kind']}: rules apply to customer mail only, "
            "so this mail would not be routed",
            file=out,
        )
    for position, match in enumerate(matched, start=1):
        print(f"  {position}. {match['rule']}: {summary(match['actions'])}", file=out)
    if matched:
        print(f"  together: {summary(report['actions'])}", file=out)


def configure(rules: argparse.ArgumentParser) -> None:
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
    rules.set_defaults(handler=_rules)


def _rules(args: argparse.Namespace) -> int:
    return explain_files(
        command_config(args),
        args.files,
        sys.stdout,
        Supposed(
            mailbox=args.mailbox,
            followup=args.followup,
            unanswered=args.unanswered,
            open_tickets=args.open_tickets,
        ),
        as_json=args.json,
    )
