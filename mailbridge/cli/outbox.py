"""`mailbridge outbox`: the outgoing mail, and queueing a failed one again.

The JSON shape is a contract (docs/architecture.md, "The command line"); the table is for
people.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, TextIO, TypeVar

from sqlalchemy import select

from mailbridge.app import App
from mailbridge.cli.common import (
    command_config,
    iso,
    open_app,
    print_json,
    table,
)
from mailbridge.core.states import OutboxState
from mailbridge.db.models import Base, Outbox
from mailbridge.errors import MailbridgeError, one_line


def configure(outbox: argparse.ArgumentParser) -> None:
    outbox_commands = outbox.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    outbox_list = outbox_commands.add_parser("list", help="list outbox rows")
    outbox_list.add_argument("--state", choices=[state.value for state in OutboxState])
    outbox_list.add_argument("--json", action="store_true", help="print a JSON array")
    outbox_retry = outbox_commands.add_parser("retry", help="queue a failed row again")
    outbox_retry.add_argument("id", type=int)
    outbox.set_defaults(handler=_outbox)


def _outbox(args: argparse.Namespace) -> int:

    with open_app(command_config(args)) as app:
        if args.outbox_command == "list":
            return list_outbox(app, args.state, args.json, sys.stdout)
        return retry_outbox(app, args.id, sys.stdout)


Row = TypeVar("Row", bound=Base)


def _all(app: App, model: type[Row], order: Any, column: Any, value: str | None) -> Sequence[Row]:
    """Every row of `model` in `order`, or those whose `column` equals `value` if given."""
    query = select(model).order_by(order)
    with app.sessions() as session:
        return session.scalars(query.where(column == value) if value else query).all()


def outbox_json(row: Outbox) -> dict[str, Any]:
    from mailbridge.outbound.send import recipient_results

    return {
        "id": row.id,
        "ticket_id": row.ticket_id,
        "kind": row.kind,
        "to": row.envelope_to,
        "message_id": row.message_id,
        "state": row.state,
        "attempts": row.attempts,
        "last_error": one_line(row.last_error) if row.last_error else None,
        "next_attempt_at": iso(row.next_attempt_at),
        "created_at": iso(row.created_at),
        "sent_at": iso(row.sent_at),
        "envelope_from": row.envelope_from,
        # Per recipient: {"address", "state" (pending, accepted, refused, failed, bounced),
        # "code", "reply"}: who got the mail and, for who did not, the server's answer.
        "recipients": recipient_results(row),
    }


def list_outbox(app: App, state: str | None, as_json: bool, out: TextIO) -> int:
    rows = _all(app, Outbox, Outbox.id, Outbox.state, state)
    if as_json:
        print_json([outbox_json(r) for r in rows], out)
        return 0
    table(
        ("ID", "KIND", "STATE", "ATTEMPTS", "TO", "LAST ERROR"),
        [
            (
                str(r.id),
                r.kind,
                r.state,
                str(r.attempts),
                ", ".join(r.envelope_to),
                one_line(r.last_error or "", 60),
            )
            for r in rows
        ],
        out,
    )
    return 0


def retry_outbox(app: App, row_id: int, out: TextIO) -> int:
    from mailbridge.outbound.send import retry

    try:
        row = retry(app, row_id)
    except (LookupError, ValueError) as exc:
        raise MailbridgeError(str(exc)) from None
    out.write(f"outbox {row.id} queued again\n")
    return 0
