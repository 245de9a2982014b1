"""`mailbridge tickets spam N [--block]` and `tickets notspam N`: what staff `#spam [block]`
and `#notspam` do by mail (tickets/spam.py), from the command line.

Each takes the processing turn first (db/turn.py), so a mail of the ticket being processed
meanwhile sees the ticket spam or not, never half of it.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from mailbridge.app import App, Step
from mailbridge.cli.common import ticket_numbered
from mailbridge.db.turn import take_turn
from mailbridge.tickets.spam import mark_not_spam, mark_spam

BY = "command line"


def configure_spam(ticket_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    spam = ticket_commands.add_parser(
        "spam",
        help="mark a ticket spam: no deadline, its unsent acknowledgement and notifications "
        "withdrawn (as staff #spam does)",
    )
    spam.add_argument("number", type=int)
    spam.add_argument(
        "--block", action="store_true", help="also block the requester's address (#spam block)"
    )
    not_spam = ticket_commands.add_parser(
        "notspam",
        help="a spam ticket is not spam: deadlines from now, and the acknowledgement it never "
        "got (as staff #notspam does)",
    )
    not_spam.add_argument("number", type=int)


def run_spam(args: argparse.Namespace, app: App, out: TextIO) -> int:
    from mailbridge.inbound.acknowledge import acknowledge_late  # only for these two

    now = app.clock.now()
    with app.transaction() as session:
        take_turn(session)
        ticket = ticket_numbered(session, args.number)
        step = Step(session, app, now)
        if args.tickets_command == "spam":
            marked = mark_spam(step, ticket, by=BY, via=BY, block=args.block)
            line = (
                f"ticket #{args.number} is spam: {len(marked.withdrawn)} unsent mail(s) withdrawn"
            )
            if marked.sending:
                line += f", {len(marked.sending)} being sent already"
            if marked.blocked:
                line += f"; {marked.blocked} blocked"
        else:
            queued = mark_not_spam(step, ticket, by=BY, via=BY, acknowledge=acknowledge_late)
            line = f"ticket #{args.number} is {ticket.status} again"
            line += "; the acknowledgement is queued" if queued else ""
    out.write(line + "\n")
    return 0
