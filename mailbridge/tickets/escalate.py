"""Sweep: fire each due warning and escalation level once, in order, with its notification.

Due tickets are found by one range scan of the indexed `ticket.next_escalation_at`, which is
NULL once nothing is pending, so closed tickets cost nothing. Each (ticket, deadline, level)
is a unique row, written with its notification and events in one transaction: a crash, a
second sweep or a second instance cannot fire it twice. Concurrent sweeps also stay out of
each other's way: PostgreSQL skips the tickets another sweep holds, and on SQLite a sweep
takes the write lock before it reads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from mailbridge.app import App, Step
from mailbridge.core.humanize import excerpt, format_deadline, format_duration
from mailbridge.core.message import Address
from mailbridge.core.sla import DueStep, due_now, next_moment, overdue_by, raised_priority
from mailbridge.core.states import INACTIVE_STATUSES
from mailbridge.core.waiting import is_waiting_deadline
from mailbridge.db import queries, tally
from mailbridge.db.models import Ticket
from mailbridge.outbound.queue import Mail, queue_mail, ticket_context, ticket_zone
from mailbridge.tickets import absence, tallies, waiting
from mailbridge.tickets.absence import covering
from mailbridge.tickets.deadlines import pending_steps
from mailbridge.tickets.events import add_event

log = logging.getLogger(__name__)

# Tickets per transaction. On SQLite a batch holds the database's write lock, which every
# other writer waits for (about 55 ms for 200); on PostgreSQL it holds only its tickets'
# rows, and each commit waits for the WAL: 500 took firing 1,000 from ~360 to ~310 ms.
BATCH = {"sqlite": 200, "postgresql": 500}
# A ticket whose sweep failed (a broken template, say) is looked at again after this, so it
# never holds up the tickets behind it.
RETRY_AFTER_FAILURE = timedelta(minutes=5)


def sweep(app: App) -> int:
    """Fire every warning and escalation level due now; returns how many fired."""
    now = app.clock.now()
    with app.sessions() as session:
        if not queries.due_ticket_ids(session, now, 1):
            return 0  # the usual case: one index probe, no write lock
    fired, batch = 0, BATCH.get(app.engine.dialect.name, 200)
    while True:
        with app.transaction() as session:
            _lock_for_writing(session)
            due = queries.tickets_due(session, now, batch)
            ids = [ticket.id for ticket in due]
            already = queries.fired_steps(session, ids)
            texts = queries.first_customer_texts(session, ids)
            fired += _sweep_batch(Step(session, app, now), due, already, texts)
        if len(due) < batch:
            return fired


def next_due(app: App) -> datetime | None:
    """The earliest moment the sweep has work, so the scheduler can wake exactly then."""
    with app.sessions() as session:
        return queries.next_escalation_due(session)


def _lock_for_writing(session: Session) -> None:
    """SQLite has no row locks: take the database's write lock before reading, so a second
    sweep waits for this one and then sees what it fired."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")


def _sweep_batch(
    step: Step,
    due: Sequence[Ticket],
    already: dict[int, set[tuple[str, int]]],
    texts: dict[int, str],
) -> int:
    """The batch's tickets in one savepoint, their events and counts written together at
    its end. Should one ticket raise, the savepoint rolls back and the batch goes again
    with a savepoint per ticket, so that ticket alone is put off (as inbound/process.py
    does with a batch of messages)."""
    session = step.session
    try:
        with (
            session.begin_nested(),
            tally.gathered(session),
            queries.written_later(session, len(due)),
            absence.away_known(session, step.now),
        ):
            plans = {t.id: _due_steps(step, t, already[t.id]) for t in due}
            claimed = _claim_first_steps(step, due, plans)
            return sum(
                _fire_due_steps(
                    step, t, set(already[t.id]), texts[t.id], plans[t.id], claimed.get(t.id)
                )
                for t in due
            )
    except Exception:  # noqa: BLE001 - each ticket again on its own, the failing one set aside
        log.info("a ticket of a sweep batch of %d failed: each again on its own", len(due))
    return sum(_sweep_ticket(step, t, set(already[t.id]), texts[t.id]) for t in due)


def _sweep_ticket(
    step: Step, ticket: Ticket, fired: set[tuple[str, int]], customer_text: str
) -> int:
    try:
        with step.session.begin_nested():
            return _fire_due_steps(step, ticket, fired, customer_text)
    except Exception:
        log.exception(
            "ticket #%s: sweep failed; trying again in %s", ticket.number, RETRY_AFTER_FAILURE
        )
        ticket.next_escalation_at = step.now + RETRY_AFTER_FAILURE
        return 0


def _due_steps(step: Step, ticket: Ticket, fired: set[tuple[str, int]]) -> list[DueStep]:
    """The ticket's steps to fire now, in order; none once it is closed."""
    if ticket.status in INACTIVE_STATUSES:
        return []
    return due_now(pending_steps(step.app, ticket, fired, step.now), step.now)


def _claim_first_steps(
    step: Step, due: Sequence[Ticket], plans: dict[int, list[DueStep]]
) -> dict[int, bool]:
    """The first due step of every ticket of the batch, recorded in one statement (a
    ticket's later steps may not fire: its first may close it); by ticket, whether this
    sweep wrote the row."""
    firsts = {t.id: _escalation(t, plans[t.id][0], step.now) for t in due if plans[t.id]}
    written = queries.fire_all_once(step.session, list(firsts.values()))
    return {
        ticket_id: (ticket_id, row["deadline"], row["level"]) in written
        for ticket_id, row in firsts.items()
    }


def _fire_due_steps(
    step: Step,
    ticket: Ticket,
    fired: set[tuple[str, int]],
    customer_text: str,
    steps: list[DueStep] | None = None,
    first_recorded: bool | None = None,
) -> int:
    """Fire the ticket's due `steps` (found here when not given) in order. The first one's
    row is written here unless `first_recorded` says whether the batch wrote it."""
    count = 0
    for n, due in enumerate(_due_steps(step, ticket, fired) if steps is None else steps):
        if ticket.status in INACTIVE_STATUSES:
            break  # closed by the waiting cycle's last step: nothing else is due
        fired.add(due.step.key)
        if n == 0 and first_recorded is not None:
            recorded = first_recorded
        else:
            recorded = queries.fire_once(step.session, _escalation(ticket, due, step.now))
        if recorded:
            if is_waiting_deadline(due.step.deadline):
                waiting.fire(step, ticket, due)  # a reminder or the close (tickets/waiting.py)
            else:
                tallies.escalated(step, due.step.level)
                _act(step, ticket, due, customer_text)
            count += 1
    ticket.next_escalation_at = next_moment(pending_steps(step.app, ticket, fired, step.now))
    return count


def _escalation(ticket: Ticket, due: DueStep, now: datetime) -> dict[str, object]:
    """The unique row that makes this step fire once (queries.fire_once: not written when
    it has fired already, by an earlier pass or another instance)."""
    return {
        "ticket_id": ticket.id,
        "policy": ticket.sla_policy,
        "deadline": due.step.deadline,
        "level": due.step.level,
        "due_at": due.at,
        "fired_at": now,
    }


def _act(step: Step, ticket: Ticket, due: DueStep, customer_text: str) -> None:
    sla_step = due.step
    late = overdue_by(due.deadline_at, step.now)
    data: dict[str, object] = {
        "deadline": sla_step.deadline,
        "level": sla_step.level,
        "due_at": due.deadline_at.isoformat(),
        "fires_at": due.at.isoformat(),
    }
    if sla_step.is_warning:
        log.info(
            "ticket #%s: %s due %s, warning sent",
            ticket.number,
            sla_step.deadline,
            due.deadline_at.isoformat(timespec="minutes"),
        )
    else:
        # The deadlines stay where they are: the level reports the miss, it does not
        # re-plan the ticket.
        ticket.escalation_level = max(ticket.escalation_level, sla_step.level)
        data["overdue_minutes"] = int(late.total_seconds() // 60)
        log.warning(
            "ticket #%s: %s overdue by %s, escalation level %d",
            ticket.number,
            sla_step.deadline.replace("_", " "),
            format_duration(late, "en"),
            sla_step.level,
        )
    higher = raised_priority(ticket.priority, sla_step.raise_priority)
    if higher != ticket.priority:
        data.update(priority_from=ticket.priority, priority_to=higher)
        ticket.priority = higher
    data["notified"] = _notify(step, ticket, due, late, customer_text)
    add_event(step, ticket, "sla_warning" if sla_step.is_warning else "escalated", **data)


def _notify(
    step: Step,
    ticket: Ticket,
    due: DueStep,
    late: timedelta,
    customer_text: str,
) -> str | None:
    staff, sla_step = step.app.config.staff, due.step
    fallback = (
        (staff.team_address, staff.escalation_address)
        if sla_step.is_warning
        else (staff.escalation_address, staff.team_address)
    )
    target = sla_step.notify or fallback[0] or fallback[1]
    if not target:
        return None
    language = step.app.config.templates.language
    cover = covering(step, target, language)  # an away staff member: the team
    target = cover.target
    zone = ticket_zone(step.app, ticket)
    context = ticket_context(step.app, ticket, language)
    context.update(
        away_note=cover.away_note,
        deadline=sla_step.deadline,
        promised_reply=format_deadline(due.deadline_at, language, zone),
        due_at_iso=due.deadline_at.astimezone(zone).isoformat(),
        due_in=format_duration(max(due.deadline_at - step.now, timedelta(0)), language),
        escalation_level=max(sla_step.level, 0),
        overdue_by=format_duration(late, language),
        excerpt=excerpt(customer_text),
    )
    queue_mail(
        step,
        Mail(
            kind="sla_warning" if sla_step.is_warning else "escalation",
            ticket=ticket,
            template="sla_warning" if sla_step.is_warning else "escalation",
            context=context,
            to=[Address("", target)],
            language=language,
            unique=f"esc.{ticket.id}.{sla_step.deadline}.{sla_step.level}",
        ),
    )
    return target
