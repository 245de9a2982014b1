"""`mailbridge rules test FILE.eml`: which routing rules a mail matches and what they would
do, as the processing path would evaluate them: with the mail's spam judgement (the
`[spam]` lists and, when the database is there, the `sender_rule` table) and what becomes
of the mail (a ticket, a spam ticket, or ignored)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import make_url, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from mailbridge.cli.common import command_config
from mailbridge.cli.parse import MailFiles
from mailbridge.config import Config
from mailbridge.core.classify import classify
from mailbridge.core.disposition import dispose
from mailbridge.core.message import ParsedMessage
from mailbridge.core.parse import parse_message
from mailbridge.core.rules import evaluate
from mailbridge.core.spam import Judgement
from mailbridge.db.models import SenderRule
from mailbridge.errors import ConfigError, one_line
from mailbridge.inbound.routing import actions_dict, described, facts_for, summary
from mailbridge.inbound.spam import judge_parsed


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
    inputs = MailFiles(files)
    with sender_table(config) as (session, note):
        if note and not as_json:
            print(f"mailbridge: note: {note}", file=sys.stderr)
        for name, raw in inputs:
            parsed = parse_message(raw)
            verdict = classify(parsed, identity)
            judged = verdict.kind == "customer" and not supposed.followup
            judgement = judge_parsed(session, config, parsed) if judged else None
            report = _report(config, name, parsed, verdict.kind, supposed, judgement)
            if note and judgement is not None:
                report["judgement"]["note"] = note
            if as_json:
                print(json.dumps(report, ensure_ascii=False, indent=2), file=out)
            else:
                _print(report, len(config.routing), out)
    return inputs.status


def _report(
    config: Config,
    name: str,
    parsed: ParsedMessage,
    kind: str,
    supposed: Supposed,
    judgement: Judgement | None,
) -> dict[str, Any]:
    """What processing would make of one mail: the rules' decision and, for a mail opening
    a ticket, the judgement and the outcome (a follow-up is not judged: inbound/spam.py)."""
    facts = facts_for(
        parsed,
        supposed.mailbox or _mailbox_for(config, parsed),
        followup=supposed.followup,
        unanswered=max(supposed.unanswered, 1),
        open_tickets=max(supposed.open_tickets, 1),
        spam=judgement is not None and judgement.spam,
    )
    decision = evaluate(config.routing, facts)
    by_name = {rule.name: rule for rule in config.routing}
    report: dict[str, Any] = {
        "file": name,
        "kind": kind,
        "language": facts.language,
        "mailbox": facts.mailbox,
        "matched": [
            {"rule": rule, "actions": described(by_name[rule])} for rule in decision.matched
        ],
        "actions": actions_dict(decision.actions),
        "judgement": None,
        "outcome": {"outcome": "followup", "reason": "joins its ticket"},
    }
    if judgement is not None:
        outcome = dispose(judgement, decision, config.routing, config.spam.action)
        report["judgement"] = {"spam": judgement.spam, "reason": judgement.reason}
        report["outcome"] = {"outcome": outcome.outcome, "reason": outcome.reason}
    return report


@contextmanager
def sender_table(config: Config) -> Iterator[tuple[Session | None, str]]:
    """A session on the database for the `sender_rule` table, and "" ; or None and why the
    table is not read (no database yet, or it cannot be reached): the configuration's
    lists still judge."""
    from mailbridge.db.engine import make_engine  # only this command needs the database

    url = make_url(config.database_url)
    if url.drivername.startswith("sqlite") and not Path(url.database or "").is_file():
        yield None, "the database does not exist: only the configuration's lists were read"
        return
    engine = make_engine(config.database_url)
    try:
        with Session(engine) as session:
            try:
                session.execute(select(SenderRule.pattern).limit(1))
            except SQLAlchemyError as exc:
                note = f"the sender_rule table could not be read ({one_line(str(exc), 120)})"
                yield None, note + ": only the configuration's lists were read"
            else:
                yield session, ""
    finally:
        engine.dispose()


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
    judgement, outcome = report["judgement"], report["outcome"]
    if judgement is not None:
        said = "yes" if judgement["spam"] else "no"
        if judgement["reason"]:
            said += f" ({judgement['reason']})"
        becomes = _OUTCOMES[outcome["outcome"]]
        if outcome["reason"] and outcome["reason"] != judgement["reason"]:
            becomes += f" by {outcome['reason']}"
        print(f"  spam: {said}; becomes {becomes}", file=out)


_OUTCOMES = {"ticket": "a ticket", "spam": "a spam ticket", "ignore": "ignored, no ticket"}


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
