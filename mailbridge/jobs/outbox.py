"""Send: drain the outbox over SMTP, at least once, with a stable Message-ID per row.

A temporary failure schedules a retry with exponential backoff; a permanent one, or running
out of attempts, marks the row `failed`, where `mailbridge outbox list` shows it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from mailbridge.adapters.smtp import SmtpConnection, SmtpSettings
from mailbridge.app import App
from mailbridge.db.models import Outbox
from mailbridge.errors import PermanentError, TransientError

log = logging.getLogger(__name__)

BATCH = 50
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class SendReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0


def retry_delay(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … capped at an hour."""
    delay: timedelta = FIRST_RETRY * (2 ** max(attempts - 1, 0))
    return min(delay, LONGEST_RETRY)


def smtp_settings(app: App) -> SmtpSettings:
    smtp = app.config.smtp
    return SmtpSettings(
        host=smtp.host,
        port=smtp.effective_port,
        security=smtp.security,
        username=smtp.username,
        password=smtp.password.get_secret_value() if smtp.password else None,
        timeout=smtp.timeout.total_seconds(),
    )


async def send_pending(app: App, settings: SmtpSettings | None = None) -> SendReport:
    """Send every due row over one SMTP connection; stop at the first temporary failure."""
    connection = SmtpConnection(settings or smtp_settings(app))
    counts = {"sent": 0, "pending": 0, "failed": 0}
    try:
        while not counts["pending"]:
            rows = await asyncio.to_thread(_due_rows, app, app.clock.now())
            if not rows:
                break
            for row in rows:
                result = await _send_one(app, connection, row)
                counts[result] += 1
                if result == "pending":  # the server is refusing: the rest can wait
                    break
    finally:
        await connection.close()
    return SendReport(counts["sent"], counts["pending"], counts["failed"])


def _due_rows(app: App, now: datetime) -> Sequence[Outbox]:
    with app.sessions() as session:
        query = (
            select(Outbox)
            .where(Outbox.state == "pending", Outbox.next_attempt_at <= now)
            .order_by(Outbox.id)
            .limit(BATCH)
        )
        return session.scalars(query).all()


async def _send_one(app: App, connection: SmtpConnection, row: Outbox) -> str:
    try:
        if not connection.is_connected:
            await connection.connect()
        await connection.send(row.raw, row.envelope_from, row.envelope_to)
    except TransientError as exc:
        return await asyncio.to_thread(_mark, app, row.id, exc, permanent=False)
    except PermanentError as exc:
        return await asyncio.to_thread(_mark, app, row.id, exc, permanent=True)
    return await asyncio.to_thread(_mark, app, row.id, None, permanent=False)


def _mark(app: App, row_id: int, error: Exception | None, *, permanent: bool) -> str:
    now = app.clock.now()
    with app.transaction() as session:
        row = session.get_one(Outbox, row_id)
        row.attempts += 1
        if error is None:
            row.state, row.sent_at, row.last_error = "sent", now, None
            log.info("outbox %d: %s <%s> sent to %s", row.id, row.kind, row.message_id,
                     ", ".join(row.envelope_to))
            return "sent"
        row.last_error = str(error)
        if permanent or row.attempts >= app.config.smtp.max_attempts:
            row.state = "failed"
            log.error("outbox %d: %s to %s failed for good after %d attempt(s): %s",
                      row.id, row.kind, ", ".join(row.envelope_to), row.attempts, error)
            return "failed"
        row.next_attempt_at = now + retry_delay(row.attempts)
        log.warning("outbox %d: %s to %s deferred (attempt %d, next at %s): %s",
                    row.id, row.kind, ", ".join(row.envelope_to), row.attempts,
                    row.next_attempt_at.isoformat(timespec="seconds"), error)
        return "pending"


def retry(app: App, row_id: int) -> Outbox:
    """Put a failed (or pending) row back at the head of the queue."""
    with app.transaction() as session:
        row = session.get(Outbox, row_id)
        if row is None:
            raise LookupError(f"no outbox row {row_id}")
        if row.state == "sent":
            raise ValueError(f"outbox row {row_id} was already sent")
        row.state, row.next_attempt_at = "pending", app.clock.now()
        return row
