"""Process stored messages: parse, classify, thread and apply, one transaction each.

A message whose processing raises is retried a bounded number of times, then quarantined
with its reason; it never blocks the messages behind it (invariant 4). Attempts are counted
before work starts, so even a message that kills the process is eventually set aside.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update

from mailbridge.app import App
from mailbridge.core.classify import classify
from mailbridge.core.parse import parse_message
from mailbridge.db.models import InboundMessage
from mailbridge.faults import crash_point
from mailbridge.jobs.apply import Outcome, apply_message

log = logging.getLogger(__name__)

BATCH = 100
ERROR_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class ProcessReport:
    processed: int = 0
    ignored: int = 0
    failed: int = 0
    quarantined: int = 0
    created: int = 0
    acknowledged: int = 0


def process_pending(app: App) -> ProcessReport:
    """Work through every new message; suspects (tried before) go one at a time."""
    totals: dict[str, int] = dict.fromkeys(ProcessReport.__dataclass_fields__, 0)
    tried: set[int] = set()  # a message that failed waits for the next pass, not this one
    while True:
        batch = _claim(app, tried)
        if not batch:
            return ProcessReport(**totals)
        tried.update(batch)
        for inbound_id in batch:
            for key, value in _process_one(app, inbound_id).items():
                totals[key] += value


def _claim(app: App, tried: set[int]) -> Sequence[int]:
    with app.transaction() as session:
        base = select(InboundMessage.id).where(InboundMessage.state == "new")
        ids = session.scalars(base.where(InboundMessage.attempts == 0)
                              .order_by(InboundMessage.id).limit(BATCH)).all()
        if not ids:
            suspects = base.where(InboundMessage.id.not_in(tried)) if tried else base
            ids = session.scalars(suspects.order_by(InboundMessage.id).limit(1)).all()
        if ids:
            session.execute(
                update(InboundMessage)
                .where(InboundMessage.id.in_(ids))
                .values(attempts=InboundMessage.attempts + 1)
            )
        return ids


def _process_one(app: App, inbound_id: int) -> dict[str, int]:
    try:
        with app.transaction() as session:
            inbound = session.get_one(InboundMessage, inbound_id)
            if inbound.state != "new":
                return {}
            parsed = parse_message(inbound.raw, app.parse_limits)
            verdict = classify(parsed, app.identity)
            now = app.clock.now()
            outcome = apply_message(session, app, inbound, parsed, verdict, now)
            inbound.state = outcome.state
            inbound.processed_at = now
            inbound.last_error = None
    except Exception as exc:  # noqa: BLE001 - any failure must quarantine, never drop
        return _record_failure(app, inbound_id, exc)
    crash_point("after_process")
    _log_outcome(inbound_id, inbound.mailbox, parsed.message_id, outcome)
    return {
        "processed": outcome.state == "processed",
        "ignored": outcome.state == "ignored",
        "created": outcome.action == "created",
        "acknowledged": outcome.acknowledged,
    }


def _record_failure(app: App, inbound_id: int, exc: BaseException) -> dict[str, int]:
    error = f"{type(exc).__name__}: {exc}"[:ERROR_LIMIT]
    with app.transaction() as session:
        inbound = session.get_one(InboundMessage, inbound_id)
        inbound.last_error = error
        if inbound.attempts >= app.config.tickets.max_attempts:
            inbound.state = "quarantined"
            log.error("message %d quarantined after %d attempts: %s",
                      inbound_id, inbound.attempts, error)
            return {"failed": 1, "quarantined": 1}
    log.warning("message %d failed (attempt %d), will retry: %s",
                inbound_id, inbound.attempts, error, exc_info=exc)
    return {"failed": 1}


def _log_outcome(inbound_id: int, mailbox: str, message_id: str | None, outcome: Outcome) -> None:
    ticket = f"#{outcome.ticket_number}" if outcome.ticket_number else "-"
    details = ", acknowledgement queued" if outcome.acknowledged else ""
    if outcome.reason:
        details += f" ({outcome.reason})"
    log.info("message %d <%s> from %s: %s ticket %s%s",
             inbound_id, message_id or "no Message-ID", mailbox, outcome.action, ticket, details)
