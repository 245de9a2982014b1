"""`mailbridge tickets`: list and show tickets, set their tags and who they answer.

The JSON shapes are a contract (docs/architecture.md, "The command line"); the tables are
for people.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TextIO

from sqlalchemy import ColumnElement, and_, or_, select

from mailbridge.app import App, Step
from mailbridge.cli.common import (
    address,
    command_config,
    duration,
    iso,
    open_app,
    print_json,
    table,
    ticket_numbered,
)
from mailbridge.cli.ticket_participants import configure_cc, listed, run_cc
from mailbridge.cli.ticket_search import configure_search, run_search
from mailbridge.cli.ticket_spam import configure_spam, run_spam
from mailbridge.core.humanize import format_duration
from mailbridge.core.message import Address
from mailbridge.core.staff import tag_name
from mailbridge.core.states import INACTIVE_STATUSES, TicketStatus
from mailbridge.db import queries
from mailbridge.db.models import Ticket, TicketTag
from mailbridge.errors import MailbridgeError
from mailbridge.tickets.deadlines import open_deadlines
from mailbridge.tickets.merge import merge_links
from mailbridge.tickets.requester import missing_requester, set_requester, unusable_requester
from mailbridge.tickets.split import split_links
from mailbridge.tickets.waiting import planned_for


def configure(tickets: argparse.ArgumentParser) -> None:
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
    configure_cc(ticket_commands)
    merge = ticket_commands.add_parser(
        "merge", help="merge one ticket into another (as staff #merge does)"
    )
    merge.add_argument("number", type=int, help="the ticket to merge away")
    merge.add_argument("--into", type=int, required=True, metavar="NUMBER", help="the ticket kept")
    merge.add_argument(
        "--across-mailboxes",
        action="store_true",
        help="allow tickets that came in through different mailboxes",
    )
    unmerge = ticket_commands.add_parser(
        "unmerge", help="undo the merge of a ticket, within 24 hours of it"
    )
    unmerge.add_argument("number", type=int)
    split = ticket_commands.add_parser(
        "split",
        help="move one customer message and all after it to a new ticket (as staff #split does)",
    )
    split.add_argument("number", type=int, help="the ticket to split")
    split.add_argument(
        "--from-article",
        type=int,
        required=True,
        metavar="ID",
        help="the customer message the new ticket starts at (an article id from tickets show)",
    )
    configure_search(ticket_commands)
    configure_spam(ticket_commands)
    tickets.set_defaults(handler=_tickets)


def _tickets(args: argparse.Namespace) -> int:

    with open_app(command_config(args)) as app:
        if args.tickets_command == "list":
            return list_tickets(
                app,
                args.status,
                args.json,
                sys.stdout,
                overdue=args.overdue,
                due_within=args.due_within,
                tag=args.tag,
            )
        if args.tickets_command == "tag":
            return tag_ticket(app, args.number, args.add, args.remove, sys.stdout)
        if args.tickets_command == "requester":
            return set_ticket_requester(app, args.number, args.address, sys.stdout)
        if args.tickets_command == "cc":
            return run_cc(args, app, sys.stdout)
        if args.tickets_command == "search":
            return run_search(args, app, sys.stdout)
        if args.tickets_command in ("spam", "notspam"):
            return run_spam(args, app, sys.stdout)
        if args.tickets_command in ("merge", "unmerge", "split"):
            from mailbridge.cli.merge import merge_command

            return merge_command(app, args, sys.stdout)
        return show_ticket(app, args.number, args.json, sys.stdout)


def ticket_json(ticket: Ticket) -> dict[str, Any]:
    return {
        "number": ticket.number,
        "status": ticket.status,
        "priority": ticket.priority,
        "subject": ticket.subject,
        "requester": ticket.requester_address,
        "requester_name": ticket.requester_name,
        "mailbox": ticket.mailbox,
        "queue": ticket.queue,
        "language": ticket.language,
        "assignee": ticket.assignee,
        "sla_policy": ticket.sla_policy,
        "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at),
        "first_response_due_at": iso(ticket.first_response_due_at),
        "first_responded_at": iso(ticket.first_responded_at),
        "resolution_due_at": iso(ticket.resolution_due_at),
        "resolved_at": iso(ticket.resolved_at),
        "escalation_level": ticket.escalation_level,
        "waiting_since": iso(ticket.waiting_since),
        "pending_since": iso(ticket.pending_since),
        "reminded_at": iso(ticket.reminded_at),
        "next_escalation_at": iso(ticket.next_escalation_at),
        "spam_at": iso(ticket.spam_at),
    }


def list_tickets(
    app: App,
    status: str | None,
    as_json: bool,
    out: TextIO,
    *,
    overdue: bool = False,
    due_within: timedelta | None = None,
    tag: str | None = None,
) -> int:
    if overdue or due_within is not None:
        return _list_by_deadline(app, status, tag, as_json, out, overdue, due_within)
    with app.sessions() as session:
        tickets = session.scalars(
            select(Ticket).where(*_narrowing(status, tag)).order_by(Ticket.number)
        ).all()
    if as_json:
        print_json([ticket_json(t) for t in tickets], out)
        return 0
    rows = [
        (
            f"#{t.number}",
            t.status,
            t.priority,
            _short(t.created_at),
            _short(t.first_response_due_at),
            str(t.escalation_level),
            t.requester_address,
            t.subject,
        )
        for t in tickets
    ]
    table(
        ("TICKET", "STATUS", "PRIORITY", "CREATED", "REPLY DUE", "ESC", "REQUESTER", "SUBJECT"),
        rows,
        out,
    )
    return 0


def _narrowing(status: str | None, tag: str | None) -> list[ColumnElement[bool]]:
    """Conditions for only the tickets with this status and this tag, when given. Spam
    is listed only when asked for by its status."""
    conditions = [Ticket.status == status if status else Ticket.status != TicketStatus.SPAM]
    if tag:
        conditions.append(Ticket.id.in_(select(TicketTag.ticket_id).where(TicketTag.tag == tag)))
    return conditions


def _list_by_deadline(
    app: App,
    status: str | None,
    tag: str | None,
    as_json: bool,
    out: TextIO,
    overdue: bool,
    due_within: timedelta | None,
) -> int:
    """Tickets with a deadline still running that has passed (overdue) or falls within
    `due_within` from now; a paused or met deadline does not count."""
    now = app.clock.now()
    first = and_(Ticket.first_responded_at.is_(None), Ticket.first_response_due_at.is_not(None))
    resolution = and_(
        Ticket.resolved_at.is_(None),
        Ticket.waiting_since.is_(None),
        Ticket.resolution_due_at.is_not(None),
    )
    wanted = []
    for running, due_at in (
        (first, Ticket.first_response_due_at),
        (resolution, Ticket.resolution_due_at),
    ):
        if overdue:
            wanted.append(and_(running, due_at < now))
        if due_within is not None:
            wanted.append(and_(running, due_at >= now, due_at <= now + due_within))
    query = (
        select(Ticket)
        .where(Ticket.status.not_in(INACTIVE_STATUSES), or_(*wanted), *_narrowing(status, tag))
        .order_by(Ticket.number)
    )
    with app.sessions() as session:
        tickets = session.scalars(query).all()
    if as_json:
        print_json([ticket_json(t) for t in tickets], out)
        return 0
    rows = []
    for t in tickets:
        deadline, due = _pending_deadline(t)
        when = (
            f"late {format_duration(now - due, 'en')}"
            if due < now
            else f"in {format_duration(due - now, 'en')}"
        )
        rows.append(
            (
                f"#{t.number}",
                t.status,
                t.priority,
                deadline.replace("_", " "),
                _short(due),
                when,
                str(t.escalation_level),
                t.requester_address,
                t.subject,
            )
        )
    table(
        ("TICKET", "STATUS", "PRIORITY", "DEADLINE", "DUE", "WHEN", "ESC", "REQUESTER", "SUBJECT"),
        rows,
        out,
    )
    return 0


def _pending_deadline(ticket: Ticket) -> tuple[str, datetime]:
    """The earliest deadline still running on a ticket the deadline query returned."""
    running = [(due, name) for name, due in open_deadlines(ticket).items() if due is not None]
    due, name = min(running)
    return name, due


def show_ticket(app: App, number: int, as_json: bool, out: TextIO) -> int:
    with app.sessions() as session:
        ticket = ticket_numbered(session, number)
        articles = queries.ticket_articles(session, ticket.id)
        events = queries.ticket_events(session, ticket.id)
        tags = queries.ticket_tags(session, ticket.id)
        copied = listed(session, ticket)
        merges = merge_links(session, ticket)
        merges.update(split_links(session, ticket))
    document = ticket_json(ticket)
    document.update(merges)
    # While the ticket waits on the customer: when the reminder and the close are planned.
    remind_at, close_at = planned_for(app, ticket)
    document["reminder_at"], document["auto_close_at"] = iso(remind_at), iso(close_at)
    # Why nobody can be answered on this ticket, and how to set someone; null when answerable.
    document["no_requester"] = missing_requester(ticket) or None
    document["tags"] = tags
    document["participants"] = copied
    document["articles"] = [
        {
            "id": a.id,
            "direction": a.direction,
            "author_kind": a.author_kind,
            "kind": a.kind,
            "internal": a.internal,
            "message_id": a.message_id,
            "from": a.from_address,
            "subject": a.subject,
            "created_at": iso(a.created_at),
            "text": a.text_body,
            "defects": a.defects,
        }
        for a in articles
    ]
    document["events"] = [{"at": iso(e.at), "type": e.type, "data": e.data} for e in events]
    if as_json:
        print_json(document, out)
        return 0
    out.write(f"#{ticket.number} {ticket.subject}\n")
    for key in (
        "status",
        "priority",
        "requester",
        "queue",
        "assignee",
        "sla_policy",
        "created_at",
        "first_response_due_at",
        "first_responded_at",
        "escalation_level",
    ):
        out.write(f"  {key}: {document[key] if document[key] != '' else '(none)'}\n")
    _write_links(document, out)
    for key in ("spam_at", "reminder_at", "auto_close_at"):
        if document[key]:
            out.write(f"  {key}: {document[key]}\n")
    if document["no_requester"]:
        out.write(f"  {document['no_requester']}\n")
    if tags:
        out.write(f"  tags: {', '.join(tags)}\n")
    if copied:
        out.write(f"  participants (Cc): {', '.join(p['address'] for p in copied)}\n")
    for article in document["articles"]:
        # Notes and held drafts went to nobody: say so, with their kind.
        internal = f" {article['kind']} (internal)" if article["internal"] else ""
        out.write(
            f"\n--- {article['direction']} {article['author_kind']}{internal} "
            f"{article['created_at']} {article['from']}\n{article['text'].rstrip()}\n"
        )
    out.write("\nevents:\n")
    for event in document["events"]:
        out.write(f"  {event['at']} {event['type']} {json.dumps(event['data'])}\n")
    return 0


def _write_links(document: dict[str, Any], out: TextIO) -> None:
    """The tickets this one was merged or split into or from, when there are any."""
    if document["merged_into"] is not None:
        out.write(f"  merged_into: #{document['merged_into']} at {document['merged_at']}\n")
    for key in ("merged_from", "split_into"):
        if document[key]:
            out.write(f"  {key}: {', '.join(f'#{n}' for n in document[key])}\n")
    if document["split_from"] is not None:
        out.write(f"  split_from: #{document['split_from']}\n")


def tag_ticket(
    app: App, number: int, add: Sequence[str], remove: Sequence[str], out: TextIO
) -> int:
    """Add and remove tags of one ticket; a `tags_changed` event says what changed."""
    from mailbridge.tickets.events import add_event

    now = app.clock.now()
    with app.transaction() as session:
        ticket = ticket_numbered(session, number)
        removed = queries.remove_ticket_tags(session, ticket.id, remove)
        added = queries.add_ticket_tags(session, ticket.id, add, now)
        step = Step(session, app, now)
        if added or removed:
            add_event(
                step,
                ticket,
                "tags_changed",
                by="command line",
                tags_added=added,
                tags_removed=removed,
            )
        tags = queries.ticket_tags(session, ticket.id)
    out.write(
        f"ticket #{number}: {', '.join(tags) or 'no tags'}"
        f"{'' if added or removed else ' (unchanged)'}\n"
    )
    return 0


def set_ticket_requester(app: App, number: int, address: Address, out: TextIO) -> int:
    """Set who a ticket answers, as a staff #requester does; `requester_changed` records it."""
    now = app.clock.now()
    with app.transaction() as session:
        ticket = ticket_numbered(session, number)
        why = unusable_requester(app, address)
        if why:
            raise MailbridgeError(f"ticket #{number}: {why}")
        step = Step(session, app, now)
        changed = set_requester(step, ticket, address, "command line")
        shown = (
            f"{ticket.requester_name} <{ticket.requester_address}>"
            if ticket.requester_name
            else ticket.requester_address
        )
    was = f" (was: {changed[0] or 'none'})" if changed else " (unchanged)"
    out.write(f"ticket #{number}: requester {shown}{was}\n")
    return 0


def _short(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"
