"""`mailbridge tickets cc N --add/--remove/--none`, and the participants `tickets show`
lists: the command-line side of tickets/participants.py."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, TextIO

from sqlalchemy.orm import Session

from mailbridge.app import App, Step
from mailbridge.cli.common import address, iso, ticket_numbered
from mailbridge.core.message import Address
from mailbridge.db.models import Ticket
from mailbridge.errors import MailbridgeError
from mailbridge.tickets import participants

BY = participants.VIA_COMMAND_LINE  # who, when no mail names a person


def configure_cc(commands: Any) -> None:
    """The `cc` action of `mailbridge tickets` (`commands` is its subparsers)."""
    cc = commands.add_parser(
        "cc", help="add or remove who gets staff answers in Cc (as staff #cc does)"
    )
    cc.add_argument("number", type=int)
    cc.add_argument(
        "--add",
        action="append",
        default=[],
        type=address,
        metavar="ADDRESS",
        help="copy this address on answers (repeat for more)",
    )
    cc.add_argument(
        "--remove",
        action="append",
        default=[],
        type=address,
        metavar="ADDRESS",
        help="stop copying this address (repeat for more)",
    )
    cc.add_argument("--none", action="store_true", help="remove every participant first")


def run_cc(args: argparse.Namespace, app: App, out: TextIO) -> int:
    return cc_ticket(app, args.number, args.add, args.remove, args.none, out)


def cc_ticket(
    app: App,
    number: int,
    add: Sequence[Address],
    remove: Sequence[Address],
    none: bool,
    out: TextIO,
) -> int:
    """--none, then --remove, then --add, each change a `participants_changed` event."""
    now = app.clock.now()
    with app.transaction() as session:
        ticket = ticket_numbered(session, number)
        problems = participants.refusals(app, ticket.requester_address, add)
        if problems:
            raise MailbridgeError(f"ticket #{number}: " + "; ".join(problems))
        step = Step(session, app, now)
        changed = participants.remove_all(step, ticket, BY, BY) if none else []
        changed += participants.remove(step, ticket, [a.address for a in remove], BY, BY)
        changed += participants.add(step, ticket, add, BY, BY)
        shown = [_shown(p["name"], p["address"]) for p in listed(session, ticket)]
    out.write(
        f"ticket #{number}: copied {', '.join(shown) or 'nobody'}"
        f"{'' if changed else ' (unchanged)'}\n"
    )
    return 0


def listed(session: Session, ticket: Ticket) -> list[dict[str, Any]]:
    """The active participants as `tickets show --json` gives them."""
    return [
        {
            "address": p.address,
            "name": p.name,
            "added_by": p.added_by,
            "added_at": iso(p.added_at),
        }
        for p in participants.active(session, ticket)
    ]


def _shown(name: str, address: str) -> str:
    return f"{name} <{address}>" if name else address
