"""`mailbridge tickets merge N --into M`, `mailbridge tickets unmerge N` and `mailbridge
tickets split N --from-article ID`.

Each takes the processing turn first (db/turn.py): a mail being processed by any instance
sees the merge whole or not at all, so none is added to a ticket being merged away.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from mailbridge.app import App, Step
from mailbridge.cli.common import ticket_numbered
from mailbridge.db.turn import take_turn
from mailbridge.tickets.merge import merge_tickets
from mailbridge.tickets.split import split_ticket
from mailbridge.tickets.unmerge import unmerge_ticket

BY = "command line"


def merge_command(app: App, args: argparse.Namespace, out: TextIO) -> int:
    if args.tickets_command == "merge":
        return merge(app, args.number, args.into, out, across_mailboxes=args.across_mailboxes)
    if args.tickets_command == "split":
        return split(app, args.number, args.from_article, out)
    return unmerge(app, args.number, out)


def merge(app: App, number: int, into: int, out: TextIO, *, across_mailboxes: bool = False) -> int:
    """Merge ticket `number` into `into` (or where `into`'s merges lead)."""
    now = app.clock.now()
    with app.transaction() as session:
        take_turn(session)
        source = ticket_numbered(session, number)
        done = merge_tickets(
            Step(session, app, now),
            source,
            into,
            by=BY,
            via=BY,
            across_mailboxes=across_mailboxes,
        )
        target = done.target.number
    via = f" (#{into} was merged into #{target} before)" if into != target else ""
    told = "; the customer is told" if done.notice_outbox_id else ""
    out.write(
        f"ticket #{number} merged into #{target}{via}: {done.articles} articles moved{told}\n"
    )
    return 0


def unmerge(app: App, number: int, out: TextIO) -> int:
    """Undo the merge of ticket `number`, within 24 hours of it."""
    now = app.clock.now()
    with app.transaction() as session:
        take_turn(session)
        source = ticket_numbered(session, number)
        target = unmerge_ticket(Step(session, app, now), source, by=BY, via=BY).number
        status = source.status
    out.write(f"ticket #{number} taken back out of #{target}; its status is {status} again\n")
    return 0


def split(app: App, number: int, article_id: int, out: TextIO) -> int:
    """Move article `article_id` of ticket `number` and every later one to a new ticket."""
    now = app.clock.now()
    with app.transaction() as session:
        take_turn(session)
        ticket = ticket_numbered(session, number)
        done = split_ticket(Step(session, app, now), ticket, article_id, by=BY, via=BY)
        new, count = done.new.number, len(done.articles)
    out.write(
        f"ticket #{number} split: article {article_id} and {count - 1} later moved to "
        f"new ticket #{new}\n"
    )
    return 0
