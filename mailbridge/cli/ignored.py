"""`mailbridge ignored`: the mail processing stored and made no ticket of, with why
(an autoreply or loop, a rule's `ignore`, spam under `[spam] action = "ignore"`), and
releasing one a person decides is a customer's.

`release` queues the message again, marked released (`inbound_message.released_at`): the
next pass makes it a ticket, or a follow-up on the ticket it answers, whatever the rules'
ignore and spam actions, the spam lists or the filter say, and as a customer's mail rather
than a staff member's (inbound/spam.py). Mail classified as automated (a loop, a bounce)
becomes a ticket too, but stays automated: no acknowledgement goes back to a machine.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from mailbridge.app import App
from mailbridge.cli.common import command_config, open_app
from mailbridge.cli.quarantine import add_show, print_summaries, show_quarantined, summaries_in
from mailbridge.core.states import InboundState
from mailbridge.db.models import InboundMessage
from mailbridge.errors import MailbridgeError

__all__ = ["configure", "list_ignored", "release_ignored"]

LISTED = 200  # the latest ignored messages `list` shows unless told otherwise


def list_ignored(app: App, as_json: bool, out: TextIO, limit: int = LISTED) -> int:
    print_summaries(summaries_in(app, InboundState.IGNORED, limit), as_json, out, "reason")
    return 0


def release_ignored(app: App, ids: Sequence[int], out: TextIO) -> int:
    """Queue the ignored messages `ids` again as released; exit 1 naming any that cannot be
    (not ignored, purged, or a copy of our own sent mail), releasing none of them then."""
    with app.transaction() as session:
        messages = [session.get(InboundMessage, i) for i in dict.fromkeys(ids)]
        refused = [
            f"{i}: {why}"
            for i, message in zip(dict.fromkeys(ids), messages, strict=True)
            if (why := _not_releasable(app, message))
        ]
        if refused:
            raise MailbridgeError("cannot release " + "; ".join(refused))
        now = app.clock.now()
        for message in messages:
            assert message is not None
            message.state = InboundState.NEW
            message.attempts, message.last_error, message.released_at = 0, None, now
    out.write(f"{len(messages)} message(s) released; the next pass makes them tickets\n")
    return 0


def _not_releasable(app: App, message: InboundMessage | None) -> str:
    if message is None:
        return "no such stored message"
    if message.state != InboundState.IGNORED:
        return f"it is {message.state}, not ignored"
    if not (message.raw or message.raw_sha256):
        return "its raw mail was purged ([retention])"
    mailboxes = {m.name: m for m in app.config.mailbox}
    if message.mailbox not in mailboxes:
        return f"its mailbox {message.mailbox!r} is no longer configured"
    if mailboxes[message.mailbox].observes_sent(message.folder):
        return "it is a copy of mail staff sent, not mail for a ticket"
    return ""


def configure(ignored: argparse.ArgumentParser) -> None:
    commands = ignored.add_subparsers(dest="ignored_command", metavar="ACTION", required=True)
    listing = commands.add_parser("list", help="the latest ignored messages, with why")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.add_argument(
        "--limit", type=int, default=LISTED, metavar="N", help=f"at most N (default {LISTED})"
    )
    add_show(commands, "one message with why it was ignored")
    release = commands.add_parser(
        "release", help="make a ticket of the message(s) on the next pass, whatever the rules"
    )
    release.add_argument("ids", type=int, nargs="+", metavar="ID")
    ignored.set_defaults(handler=_ignored)


def _ignored(args: argparse.Namespace) -> int:
    with open_app(command_config(args)) as app:
        if args.ignored_command == "list":
            return list_ignored(app, args.json, sys.stdout, max(args.limit, 1))
        if args.ignored_command == "show":
            return show_quarantined(app, args.id, args.raw, sys.stdout)
        return release_ignored(app, args.ids, sys.stdout)
