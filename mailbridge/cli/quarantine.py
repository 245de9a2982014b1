"""`mailbridge quarantine`: see the messages processing gave up on, and replay them.

A quarantined message keeps its raw bytes and the last error; `retry` puts it back in
the queue with a fresh attempt budget, for after the cause has been fixed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from email.parser import BytesHeaderParser
from email.policy import default
from typing import Any, TextIO

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailbridge.app import App
from mailbridge.cli.common import command_config, iso, open_app, table
from mailbridge.core.states import InboundState
from mailbridge.db.blobs import BlobError
from mailbridge.db.models import InboundMessage
from mailbridge.db.stored_bytes import raw_of
from mailbridge.errors import MailbridgeError, one_line

__all__ = [
    "add_show",
    "configure",
    "list_quarantined",
    "message_summary",
    "print_summaries",
    "retry_quarantined",
    "show_quarantined",
    "summaries_in",
]

_HEADERS = BytesHeaderParser(policy=default)


def message_summary(session: Session, message: InboundMessage) -> dict[str, Any]:
    """A stored message as `quarantine` and `ignored` list it (its raw bytes' From and
    Subject as written; empty once retention purged them, or when its file cannot be read,
    which `show` and `storage check` report)."""
    try:
        raw = raw_of(session, message)
    except BlobError:
        raw = b""
    headers = _HEADERS.parsebytes(raw)
    return {
        "id": message.id,
        "mailbox": message.mailbox,
        "message_id": message.message_id,
        "from": str(headers.get("From", "")),
        "subject": str(headers.get("Subject", "")),
        "received_at": iso(message.received_at),
        "attempts": message.attempts,
        # One line, as described when stored; an error stored before that may hold more.
        "last_error": one_line(message.last_error) if message.last_error else None,
        "reason": message.reason,
        "size": message.size,
    }


def summaries_in(app: App, state: InboundState, limit: int | None = None) -> list[dict[str, Any]]:
    """The stored messages in `state`, oldest first (with `limit`: the latest so many)."""
    with app.sessions() as session:
        query = select(InboundMessage).where(InboundMessage.state == state)
        if limit is None:
            rows = session.scalars(query.order_by(InboundMessage.id)).all()
        else:
            latest = query.order_by(InboundMessage.id.desc()).limit(limit)
            rows = list(reversed(session.scalars(latest).all()))
        return [message_summary(session, row) for row in rows]


def print_summaries(
    summaries: list[dict[str, Any]], as_json: bool, out: TextIO, why: str = "last_error"
) -> None:
    """A JSON array, or a table whose last column is the summaries' `why` key."""
    if as_json:
        out.write(json.dumps(summaries, ensure_ascii=False, indent=2) + "\n")
        return
    table(
        ("ID", "MAILBOX", "RECEIVED", "FROM", "SUBJECT", "ERROR" if why == "last_error" else "WHY"),
        [
            (
                str(s["id"]),
                s["mailbox"],
                s["received_at"][:16],
                s["from"],
                s["subject"],
                (s[why] or "")[:60],
            )
            for s in summaries
        ],
        out,
    )


def list_quarantined(app: App, as_json: bool, out: TextIO) -> int:
    print_summaries(summaries_in(app, InboundState.QUARANTINED), as_json, out)
    return 0


def show_quarantined(app: App, message_id: int, raw: bool, out: TextIO) -> int:
    """One stored message, whatever its state (`ignored show` too)."""
    with app.sessions() as session:
        message = session.get(InboundMessage, message_id)
        if message is None:
            raise MailbridgeError(f"no stored message {message_id}")
        if raw:
            out.flush()
            sys.stdout.buffer.write(raw_of(session, message))
            return 0
        summary = message_summary(session, message)
        summary["state"] = message.state
    for key, value in summary.items():
        out.write(f"{key}: {value}\n")
    return 0


def retry_quarantined(app: App, ids: Sequence[int], every: bool, out: TextIO) -> int:
    if not ids and not every:
        raise MailbridgeError("name the message ids to retry, or --all")
    with app.transaction() as session:
        query = update(InboundMessage).where(InboundMessage.state == InboundState.QUARANTINED)
        if not every:
            query = query.where(InboundMessage.id.in_(ids))
        result = session.execute(query.values(state=InboundState.NEW, attempts=0, last_error=None))
        count = int(getattr(result, "rowcount", 0) or 0)
    if not every and count != len(set(ids)):
        out.write(f"{count} of {len(set(ids))} message(s) were quarantined and are queued again\n")
        return 1
    out.write(f"{count} message(s) queued again; the next pass processes them\n")
    return 0


def add_show(commands: Any, help_line: str) -> None:
    """The `show ID [--raw]` action (`show_quarantined` shows any stored message)."""
    show = commands.add_parser("show", help=help_line)
    show.add_argument("id", type=int)
    show.add_argument("--raw", action="store_true", help="print the raw message")


def configure(quarantine: argparse.ArgumentParser) -> None:
    quarantine_commands = quarantine.add_subparsers(
        dest="quarantine_command", metavar="ACTION", required=True
    )
    quarantine_list = quarantine_commands.add_parser("list", help="list quarantined messages")
    quarantine_list.add_argument("--json", action="store_true", help="print a JSON array")
    add_show(quarantine_commands, "one message with its error")
    quarantine_retry = quarantine_commands.add_parser(
        "retry", help="process the message(s) again on the next pass"
    )
    quarantine_retry.add_argument("ids", type=int, nargs="*", metavar="ID")
    quarantine_retry.add_argument("--all", action="store_true", help="every quarantined message")
    quarantine.set_defaults(handler=_quarantine)


def _quarantine(args: argparse.Namespace) -> int:
    with open_app(command_config(args)) as app:
        if args.quarantine_command == "list":
            return list_quarantined(app, args.json, sys.stdout)
        if args.quarantine_command == "show":
            return show_quarantined(app, args.id, args.raw, sys.stdout)
        return retry_quarantined(app, args.ids, args.all, sys.stdout)
