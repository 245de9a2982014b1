"""What the read-only commands print: tickets, outbox rows, template checks and previews.

The JSON shapes are a contract (DESIGN.md); the tables are for people.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TextIO, TypeVar

from sqlalchemy import ColumnElement, and_, or_, select

from mailbridge.adapters.templates import SAMPLE_CONTEXT, TemplateSet, default_templates_dir
from mailbridge.app import App, Step, build_app
from mailbridge.config import Config
from mailbridge.core.clip import clip_context
from mailbridge.core.humanize import format_duration
from mailbridge.core.message import Address
from mailbridge.db import queries
from mailbridge.db.models import Base, Outbox, Ticket, TicketTag
from mailbridge.errors import MailbridgeError, TemplateError, one_line
from mailbridge.tickets.deadlines import CLOSED as CLOSED_STATUSES
from mailbridge.tickets.deadlines import open_deadlines
from mailbridge.tickets.requester import missing_requester, set_requester, unusable_requester


@contextmanager
def open_app(config: Config) -> Iterator[App]:
    app = build_app(config)
    try:
        yield app
    finally:
        app.close()


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


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
        "next_escalation_at": iso(ticket.next_escalation_at),
    }


def _print_json(value: object, out: TextIO) -> None:
    out.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


Row = TypeVar("Row", bound=Base)


def _all(app: App, model: type[Row], order: Any, column: Any, value: str | None) -> Sequence[Row]:
    """Every row of `model` in `order`, or those whose `column` equals `value` if given."""
    query = select(model).order_by(order)
    with app.sessions() as session:
        return session.scalars(query.where(column == value) if value else query).all()


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
        _print_json([ticket_json(t) for t in tickets], out)
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
    """Conditions for only the tickets with this status and this tag, when given."""
    conditions = []
    if status:
        conditions.append(Ticket.status == status)
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
        .where(Ticket.status.not_in(CLOSED_STATUSES), or_(*wanted), *_narrowing(status, tag))
        .order_by(Ticket.number)
    )
    with app.sessions() as session:
        tickets = session.scalars(query).all()
    if as_json:
        _print_json([ticket_json(t) for t in tickets], out)
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
        ticket = queries.ticket_by_number(session, number)
        if ticket is None:
            raise MailbridgeError(f"no ticket #{number}")
        articles = queries.ticket_articles(session, ticket.id)
        events = queries.ticket_events(session, ticket.id)
        tags = queries.ticket_tags(session, ticket.id)
    document = ticket_json(ticket)
    # Why nobody can be answered on this ticket, and how to set someone; null when answerable.
    document["no_requester"] = missing_requester(ticket) or None
    document["tags"] = tags
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
        _print_json(document, out)
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
    if document["no_requester"]:
        out.write(f"  {document['no_requester']}\n")
    if tags:
        out.write(f"  tags: {', '.join(tags)}\n")
    for article in document["articles"]:
        out.write(
            f"\n--- {article['direction']} {article['author_kind']} "
            f"{article['created_at']} {article['from']}\n{article['text'].rstrip()}\n"
        )
    out.write("\nevents:\n")
    for event in document["events"]:
        out.write(f"  {event['at']} {event['type']} {json.dumps(event['data'])}\n")
    return 0


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
        _print_json([outbox_json(r) for r in rows], out)
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


def tag_ticket(
    app: App, number: int, add: Sequence[str], remove: Sequence[str], out: TextIO
) -> int:
    """Add and remove tags of one ticket; a `tags_changed` event says what changed."""
    from mailbridge.tickets.events import add_event

    now = app.clock.now()
    with app.transaction() as session:
        ticket = queries.ticket_by_number(session, number)
        if ticket is None:
            raise MailbridgeError(f"no ticket #{number}")
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
        ticket = queries.ticket_by_number(session, number)
        if ticket is None:
            raise MailbridgeError(f"no ticket #{number}")
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


def retry_outbox(app: App, row_id: int, out: TextIO) -> int:
    from mailbridge.outbound.send import retry

    try:
        row = retry(app, row_id)
    except (LookupError, ValueError) as exc:
        raise MailbridgeError(str(exc)) from None
    out.write(f"outbox {row.id} queued again\n")
    return 0


def _load_templates(config: Config) -> TemplateSet:
    return TemplateSet.load(
        config.templates.dir or default_templates_dir(), config.templates.language
    )


def check_templates(config: Config, out: TextIO) -> int:
    templates = _load_templates(config)
    problems = templates.check()
    for problem in problems:
        out.write(problem + "\n")
    if problems:
        return 2
    out.write(
        f"{len(templates.names())} templates in {len(templates.languages())} language(s): ok\n"
    )
    return 0


def preview_template(
    config: Config, name: str, ticket_number: int | None, language: str | None, out: TextIO
) -> int:
    templates = _load_templates(config)
    context: dict[str, object] = dict(SAMPLE_CONTEXT)
    if ticket_number is not None:
        from mailbridge.outbound.queue import ticket_context

        with open_app(config) as app, app.sessions() as session:
            ticket = queries.ticket_by_number(session, ticket_number)
            if ticket is None:
                raise MailbridgeError(f"no ticket #{ticket_number}")
            context.update(ticket_context(app, ticket, language or config.templates.language))
    if name not in templates.names():
        raise TemplateError(
            f"no template named {name!r}; known: {', '.join(sorted(templates.names()))}"
        )
    rendered = templates.render(
        name, clip_context(context, language or config.templates.language), language
    )
    out.write(f"Subject: {rendered.subject}\n\n{rendered.text.rstrip()}\n")
    if rendered.html:
        out.write(f"\n--- HTML ---\n{rendered.html.rstrip()}\n")
    return 0


def _short(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    if not rows:
        out.write("(none)\n")
        return
    widths = [min(max(len(h), *(len(r[i]) for r in rows)), 48) for i, h in enumerate(headers)]
    for row in (headers, *rows):
        out.write(
            "  ".join(
                cell[:48].ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
            + "\n"
        )
