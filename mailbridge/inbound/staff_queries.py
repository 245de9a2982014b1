"""Queries by mail: a proven staff member writes to the support address, or answers any
notification, with commands alone (`#mine`, `#overdue`, `#unassigned`, `#waiting`,
`#show 1042`, `#search words`, `#away [until DATE]`, `#digest on|off`), and gets the answer
in a mail to them alone (template `staff_query`, kind "query").

Nothing else happens: nothing reaches a customer, no ticket is opened, no article is
written; one `staff_query` event about no ticket records who asked what. A mail that mixes
questions with ticket commands or text is refused whole (core/staff_queries.py). Only
proven staff get here (inbound/apply.py, invariant 8): anyone else's `#mine` is customer
mail and answers nothing.

Runs inside the caller's transaction, like the rest of apply.
"""

from __future__ import annotations

import re
from datetime import timedelta

from mailbridge.app import Step
from mailbridge.core.away import return_date
from mailbridge.core.correlate import format_tag
from mailbridge.core.humanize import excerpt
from mailbridge.core.message import Address, ParsedMessage
from mailbridge.core.staff import Command, parse_commands, strip_signature, ticket_number_argument
from mailbridge.core.staff_queries import Query, query_of
from mailbridge.core.ticket_lines import TicketFacts, format_moment, one_line, ticket_line
from mailbridge.db.models import InboundMessage, Ticket
from mailbridge.inbound import digest
from mailbridge.inbound.identity import StaffClaim, token_address
from mailbridge.outbound.personal import PersonalMail, queue_personal_mail
from mailbridge.outbound.queue import Queued, ticket_zone
from mailbridge.tickets import absence, search, staff_views
from mailbridge.tickets.events import Applied, add_general_event
from mailbridge.tickets.merge import live_ticket_by_number

TEMPLATE = "staff_query"
ARTICLE_CHARS = 2000  # of each article `#show` gives
ARTICLE_LINES = 40
SEARCH_HITS = 20

Section = dict[str, object]


def answer_query(
    step: Step, inbound: InboundMessage, parsed: ParsedMessage, claim: StaffClaim
) -> Applied | None:
    """Answer a proven staff member's query; None when the mail is not one."""
    patterns = [re.compile(p, re.MULTILINE) for p in step.app.config.staff.signature_patterns]
    message = parse_commands(strip_signature(parsed.reply_text or parsed.text, patterns))
    query = query_of(message)
    if query is None:
        return None
    errors = list(query.problems)
    sections: list[Section] = []
    if not errors:
        sections = [_answer(step, claim, command) for command in query.commands]
        errors = [str(s["error"]) for s in sections if s.get("error")]
    if errors:  # refused whole: nothing set, nothing listed
        sections = []
    row = _send(step, inbound, parsed, claim, query, sections, errors)
    add_general_event(
        step,
        "staff_query_refused" if errors else "staff_query",
        by=claim.address,
        via="mail",
        proof=claim.proof,
        commands=[_written(c) for c in query.commands],
        errors=errors,
        outbox_id=row.id,
        inbound_message_id=inbound.id,
    )
    reason = "; ".join(errors) if errors else ", ".join(_written(c) for c in query.commands)
    return Applied.to(None, "staff_query_refused" if errors else "staff_query", reason=reason)


# `#away` with no date: away until their next real mail, or this long at the most.
NO_DATE_ABSENCE = timedelta(days=30)


def _written(command: Command) -> str:
    return f"#{command.name} {command.argument}".rstrip()


def _answer(step: Step, claim: StaffClaim, command: Command) -> Section:
    section: Section = {"command": one_line(_written(command), 200), "kind": command.name}
    if command.name in ("mine", "overdue", "unassigned", "waiting"):
        section.update(_listing(step, claim.address, command.name))
    elif command.name == "show":
        section.update(_show(step, claim.address, command.argument))
    elif command.name == "search":
        section.update(_search(step, claim.address, command.argument))
    elif command.name == "away":
        section.update(_away(step, claim.address, command.argument))
    elif command.name == "digest":
        enabled = command.argument == "on"
        digest.set_digest(step, claim.address, enabled, by=claim.address, via="mail")
        section["value"] = command.argument
    return section


def _line(step: Step, ticket: Ticket, reader: str) -> dict[str, object]:
    app = step.app
    facts = TicketFacts(
        number=ticket.number or 0,
        customer_name=ticket.requester_name,
        customer_address=ticket.requester_address,
        subject=ticket.subject,
        created_at=ticket.created_at,
        deadline=staff_views.running_deadline(ticket),
        reply_address=token_address(app, ticket, reader, step.now),
        mine=(ticket.assignee or "").lower() == reader.lower(),
    )
    tag = format_tag(app.config.tickets.tag_prefix, facts.number)
    zone = ticket_zone(app, ticket)
    return ticket_line(facts, step.now, zone, tag).as_entry()


def _listing(step: Step, reader: str, kind: str) -> Section:
    found = staff_views.listing(step.session, kind, reader, step.now)
    return {
        "tickets": [_line(step, ticket, reader) for ticket in found.tickets],
        "left_out": found.left_out,
    }


def _show(step: Step, reader: str, argument: str) -> Section:
    number = ticket_number_argument(argument)
    ticket = live_ticket_by_number(step.session, number) if number is not None else None
    if ticket is None:
        return {"error": f"#show {argument}: no ticket with that number"}
    zone = ticket_zone(step.app, ticket)
    found = staff_views.conversation(step.session, ticket)
    articles = [
        {
            "author": one_line(a.from_name or a.from_address or a.author_kind, 200),
            "at": format_moment(a.created_at, zone),
            "direction": a.direction,
            "internal": a.internal,
            "kind": str(a.author_kind),
            "text": excerpt(a.text_body or "", max_lines=ARTICLE_LINES, max_chars=ARTICLE_CHARS),
            "files": ", ".join(one_line(n, 200) for n in found.attachments.get(a.id, [])),
        }
        for a in found.articles
    ]
    line = _line(step, ticket, reader)
    line["status"] = str(ticket.status)
    line["assignee"] = ticket.assignee or ""
    if number != ticket.number:
        line["merged_from"] = number
    return {"tickets": [line], "conversation": articles, "left_out": found.left_out}


def _search(step: Step, reader: str, words: str) -> Section:
    hits = search.search_tickets(step.session, words, limit=SEARCH_HITS)
    lines = []
    for hit in hits:
        ticket = live_ticket_by_number(step.session, hit.number)
        if ticket is None:
            continue
        line = _line(step, ticket, reader)
        line["snippet"] = one_line(hit.snippet, 300)
        line["status"] = hit.status
        lines.append(line)
    return {"tickets": lines, "left_out": 0}


def _away(step: Step, address: str, argument: str) -> Section:
    """`#away until 12/01`: until the end of that day in the [calendar] zone; `#away`
    alone: for NO_DATE_ABSENCE. Either way their next real mail ends it
    (tickets/absence.py)."""
    zone = step.app.config.calendar.zone
    until = step.now + NO_DATE_ABSENCE
    if argument:
        today = step.now.astimezone(zone).date()
        day = return_date(argument, today)
        if day is None:
            return {
                "error": f"#away {argument}: not a date we read; write it day first, "
                "like #away until 12/01 or #away until 12/01/2027"
            }
        if day < today:
            return {"error": f"#away {argument}: that day is past"}
        until = absence.end_of_day(day, zone)
    absence.set_away(step, address, until, source="mail", by=address)
    last_day = (until - timedelta(microseconds=1)).astimezone(zone).date().isoformat()
    return {"value": last_day}


def _send(
    step: Step,
    inbound: InboundMessage,
    parsed: ParsedMessage,
    claim: StaffClaim,
    query: Query,
    sections: list[Section],
    errors: list[str],
) -> Queued:
    app = step.app
    language = app.config.templates.language
    support = app.config.mailbox_named(inbound.mailbox).address
    context: dict[str, object] = {
        "subject": " ".join(_written(c) for c in query.commands)[:200],
        "event": "refused" if errors else "answered",
        "errors": errors,
        "sections": sections,
        "support_address": support,
        "company_name": app.config.templates.company,
        "excerpt": excerpt(parsed.reply_text or parsed.text, max_lines=20, max_chars=2000)
        if errors
        else "",
    }
    return queue_personal_mail(
        step,
        PersonalMail(
            kind="query",
            template=TEMPLATE,
            context=context,
            to=Address(parsed.from_.name if parsed.from_ else "", claim.address),
            language=language,
            unique=f"query.{inbound.id}",
            reply_to=Address(app.sender.name, support),
            in_reply_to=parsed.message_id,
            references=[*parsed.references, *([parsed.message_id] if parsed.message_id else [])],
        ),
    )
