"""Send: drain the outbox over SMTP, at least once, with a stable Message-ID per row.

A temporary failure schedules a retry after a growing, jittered pause until the row is
`smtp.give_up_after` old (or has had `smtp.max_attempts` tries); a permanent one marks the
row `failed` at once with the server's answer. While the SMTP login's OAuth2 sign-in needs a
person, nothing is tried and no attempt counted: rows wait, and each gets at least one
attempt once signed in again, however old. Each envelope recipient's fate is kept on the
row: one the server accepted never gets the mail again, one refused for now is retried
alone. `mailbridge outbox list` shows all of it; a row that fails for good also leaves a
`mail_failed` event with the reason on its ticket.

A row is marked sent only after the server accepted it: a crash in between sends the same
stored bytes, with the same Message-ID, once more.

Rows are taken one at a time, the longest due first. On PostgreSQL, where several instances
may send, a row is claimed with `SELECT … FOR UPDATE SKIP LOCKED` in a transaction that stays
open through the SMTP conversation and commits the row's outcome: no two senders ever hand
over the same row at once, and a sender that dies lets go of its row with its connection.
SQLite has no row locks and one instance: its sender reads the row, talks to the server
with no transaction open (one held would stop every other writer), then records the outcome
in a short transaction of its own.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

from sqlalchemy import Select, select, update
from sqlalchemy.orm import object_session

from mailbridge.adapters.smtp import Delivery, SmtpConnection, SmtpSettings
from mailbridge.app import App
from mailbridge.core import tallies
from mailbridge.core.bounce import make_return_path
from mailbridge.core.humanize import format_duration
from mailbridge.core.states import WEBHOOK_KIND, OutboxState, RecipientState
from mailbridge.db import queries, tally
from mailbridge.db.models import Outbox, RecipientResult
from mailbridge.errors import DeliveryError, PermanentError, describe_error, one_line
from mailbridge.faults import crash_point
from mailbridge.oauth.endpoint import SignInRequired
from mailbridge.oauth.tokens import TokenProvider
from mailbridge.outbound.render import RecipeError, outbox_bytes

log = logging.getLogger(__name__)

BATCH = 50
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
_MAX_DOUBLINGS = 16  # 30 s * 2**16 is far past the cap; keeps the arithmetic small

Jitter = Callable[[], float]  # a draw from [0, 1), e.g. random.random
# What one attempt on a row came to; "refusing": the server turned the message away for
# now, and the rest of the queue waits for the next pass.
Attempt = Literal["sent", "deferred", "failed", "refusing"]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class SendReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    refused: bool = False  # the pass ended because the server turned mail away for now


def retry_delay(attempts: int, draw: Jitter = random.random) -> timedelta:
    """30 s, 1 min, 2 min, … capped at an hour, each scaled to a random 50-100 %.

    The jitter spreads out rows that failed together (a server outage), so they do not all
    come back in the same second when it ends.
    """
    ceiling: timedelta = FIRST_RETRY * (2 ** min(max(attempts - 1, 0), _MAX_DOUBLINGS))
    return min(ceiling, LONGEST_RETRY) * (0.5 + 0.5 * draw())


def envelope_sender(app: App, row: Outbox) -> str:
    """The envelope sender (return path) a row is sent with; the same on every attempt.

    With `smtp.verp` it names the row, so a bounce that comes back to it is matched exactly
    (inbound/bounces reads it with core.bounce.find_return_path).
    """
    base = row.envelope_from  # the bounce address of the brand it went out under
    if base == app.sender.address and app.config.smtp.bounce_address:
        # A row queued before rows held their bounce address holds the From address.
        base = app.config.smtp.bounce_address
    return make_return_path(base, row.id, row.message_id) if app.config.smtp.verp else base


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


async def send_pending(
    app: App,
    settings: SmtpSettings | None = None,
    *,
    draw: Jitter = random.random,
    observe: Callable[[Outbox, float], None] | None = None,
) -> SendReport:
    """Send every due row over one SMTP connection; stop when the server refuses for now.
    `observe(row, seconds)` hears of each row sent and how long handing it over took."""
    connection = SmtpConnection(settings or smtp_settings(app))
    claims: _Claims = _ReadRows(app) if app.engine.dialect.name == "sqlite" else _LockedRows(app)
    counts = {"sent": 0, "deferred": 0, "failed": 0}
    refused = False
    try:
        while (row := await claims.next()) is not None:
            started = time.monotonic()
            result = await _send_one(app, claims, connection, row, draw)
            if observe is not None and result == "sent":
                observe(row, time.monotonic() - started)
            if result == "refusing":  # the rest can wait for the next pass
                counts["deferred"] += 1
                refused = True
                break
            counts[result] += 1
    finally:
        await claims.close()  # first, so that a row still held is let go at once
        await connection.close()
    return SendReport(counts["sent"], counts["deferred"], counts["failed"], refused)


def bring_forward(app: App, *, limit: int | None = None) -> int:
    """Make pending rows that wait out a retry pause due now, the oldest first (at most
    `limit`): the server that turned them away is accepting again, or is to be probed.
    Without this, mail refused during an outage would wait its own backoff (up to an hour)
    after the server is back."""
    now = app.clock.now()
    waiting = (
        select(Outbox.id)
        .where(
            Outbox.state == OutboxState.PENDING,
            Outbox.next_attempt_at > now,
            Outbox.kind != WEBHOOK_KIND,
        )
        .order_by(Outbox.created_at, Outbox.id)
        .limit(limit)
    )
    with app.transaction() as session:
        moved = session.execute(
            update(Outbox)
            .where(Outbox.id.in_(waiting.scalar_subquery()))
            .values(next_attempt_at=now)
        )
        return int(getattr(moved, "rowcount", 0) or 0)


Mark = Callable[[Outbox], Attempt]  # records one attempt's outcome on the row, in a transaction


class _Claims(Protocol):
    async def next(self) -> Outbox | None: ...
    async def record(self, row: Outbox, mark: Mark) -> Attempt: ...
    async def close(self) -> None: ...


def _next_due(now: datetime) -> Select[Outbox]:
    # Webhook rows are outbound/webhook_send.py's: they never go to the SMTP server.
    return (
        select(Outbox)
        .where(
            Outbox.state == OutboxState.PENDING,
            Outbox.next_attempt_at <= now,
            Outbox.kind != WEBHOOK_KIND,
        )
        .order_by(Outbox.next_attempt_at, Outbox.id)
        .limit(1)
    )


class _ReadRows:
    """SQLite, one sender: the row is read, and its outcome written afterwards in a short
    transaction of its own."""

    def __init__(self, app: App) -> None:
        self._app = app

    async def next(self) -> Outbox | None:
        return await asyncio.to_thread(self._read)

    def _read(self) -> Outbox | None:
        with self._app.sessions() as session:
            return session.scalars(_next_due(self._app.clock.now())).first()

    async def record(self, row: Outbox, mark: Mark) -> Attempt:
        return await asyncio.to_thread(self._write, row.id, mark)

    def _write(self, row_id: int, mark: Mark) -> Attempt:
        with self._app.transaction() as session:
            row = session.get(Outbox, row_id)
            if row is None:
                # Withdrawn while being handed over (its ticket was marked spam,
                # tickets/spam.py): nothing is left to record the outcome on.
                log.warning("outbox %d: withdrawn while being sent; it may have gone", row_id)
                return "failed"
            return mark(row)

    async def close(self) -> None:
        pass


class _LockedRows:
    """PostgreSQL, any number of senders: a row stays locked by the transaction that claimed
    it until its outcome is committed. That session is held across the SMTP conversation and
    used by one thread at a time."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._session = app.sessions()
        self._busy: asyncio.Future[Any] | None = None

    async def next(self) -> Outbox | None:
        return await self._in_thread(self._claim)

    def _claim(self) -> Outbox | None:
        due = _next_due(self._app.clock.now()).with_for_update(skip_locked=True)
        row = self._session.scalars(due).first()
        if row is None:
            self._session.rollback()  # nothing held: give the connection back
        return row

    async def record(self, row: Outbox, mark: Mark) -> Attempt:
        return await self._in_thread(lambda: self._commit(row, mark))

    def _commit(self, row: Outbox, mark: Mark) -> Attempt:
        outcome = mark(row)
        self._session.commit()
        return outcome

    async def close(self) -> None:
        if self._busy is not None:
            await asyncio.wait([self._busy])
        await asyncio.to_thread(self._session.close)  # rolls back, letting go of a held row

    async def _in_thread(self, work: Callable[[], _T]) -> _T:
        # Shielded: a cancelled caller leaves the statement running in its thread, and
        # close() must wait for it instead of using the session alongside.
        busy = asyncio.ensure_future(asyncio.to_thread(work))
        self._busy = busy
        return await asyncio.shield(busy)


def recipient_results(row: Outbox) -> list[RecipientResult]:
    """A fresh copy of the row's per-recipient record (all pending before the first try)."""
    if row.recipients:
        return [
            RecipientResult(
                address=entry["address"],
                state=RecipientState(entry["state"]),
                code=entry["code"],
                reply=entry["reply"],
            )
            for entry in row.recipients
        ]
    return [
        RecipientResult(address=a, state=RecipientState.PENDING, code=None, reply="")
        for a in row.envelope_to
    ]


async def _send_one(
    app: App, claims: _Claims, connection: SmtpConnection, row: Outbox, draw: Jitter
) -> Attempt:
    """One attempt at the row, over the shared connection."""
    targets = [r["address"] for r in recipient_results(row) if r["state"] == RecipientState.PENDING]
    delivery = Delivery((), "", {})  # nothing left to send to: settle the row as it stands
    try:
        raw = await asyncio.to_thread(outbox_bytes, app, row) if targets else row.raw
    except RecipeError as exc:
        return await claims.record(row, partial(_record_unrenderable, app, error=exc))
    try:
        if targets and not connection.is_connected:
            await connection.connect()
    except SignInRequired as exc:
        # The SMTP login's OAuth2 sign-in needs a person: sending pauses. No attempt is
        # counted and nothing is written: the mail waits, and goes once signed in again.
        oauth = connection.settings.oauth
        if not isinstance(oauth, TokenProvider) or oauth.tell_once(str(exc)):
            log.error("outbox: sending paused: %s", exc)
        return "refusing"
    except DeliveryError as exc:
        # Not this message's fault (server down, login refused, certificate): it waits for
        # its next attempt, and the rest of the queue for the next pass.
        if isinstance(exc, PermanentError):
            log.error("outbox: cannot use the SMTP server: %s", exc)
        return await claims.record(row, partial(_record_failure, app, error=exc, draw=draw))
    try:
        if targets:
            delivery = await connection.deliver(raw, envelope_sender(app, row), targets)
    except DeliveryError as exc:
        permanent = isinstance(exc, PermanentError)
        mark = partial(_record_failure, app, error=exc, draw=draw, permanent=permanent)
        return await claims.record(row, _keeping(raw, mark))
    if delivery.accepted:
        crash_point("after_smtp_accept")
    mark = partial(_record_delivery, app, delivery=delivery, draw=draw)
    return await claims.record(row, _keeping(raw, mark) if targets else mark)


def _record_delivery(app: App, row: Outbox, delivery: Delivery, draw: Jitter) -> Attempt:
    now = app.clock.now()
    row.attempts += 1
    results = recipient_results(row)
    for entry in results:
        refusal = delivery.refused.get(entry["address"])
        if refusal is not None:
            code, text = refusal
            entry["state"] = RecipientState.REFUSED if code >= 500 else RecipientState.PENDING
            entry["code"], entry["reply"] = code, f"{code} {text}"
        elif entry["address"] in delivery.recipients:
            entry["state"] = RecipientState.ACCEPTED
            entry["code"], entry["reply"] = None, delivery.reply
    if delivery.accepted and row.sent_at is None:
        row.sent_at = now
        if row.kind == "ack":
            session = object_session(row)
            assert session is not None, "a row being marked is in its transaction's session"
            tally.add(session, [(tallies.ACKNOWLEDGEMENTS_SENT, (), 1.0)])
    row.recipients = results
    return _settle(app, row, now, _refusals(results), draw)


def _record_failure(
    app: App, row: Outbox, error: DeliveryError, draw: Jitter, *, permanent: bool = False
) -> Attempt:
    """The message as a whole failed: for every recipient still due, for now or for good."""
    now = app.clock.now()
    row.attempts += 1
    results = recipient_results(row)
    described = describe_error(error)
    if permanent:
        for entry in results:
            if entry["state"] == RecipientState.PENDING:
                entry["state"] = RecipientState.REFUSED
                entry["code"], entry["reply"] = error.code, described
    row.recipients = results
    outcome = _settle(app, row, now, described, draw)
    return "refusing" if outcome == "deferred" else outcome


def _record_unrenderable(app: App, row: Outbox, error: RecipeError) -> Attempt:
    """The row's template no longer renders from its values: it fails for good, with the
    reason, and keeps its recipe, so `outbox retry` renders it again once that is fixed."""
    results = recipient_results(row)
    for entry in results:
        if entry["state"] == RecipientState.PENDING:
            entry["state"], entry["reply"] = RecipientState.FAILED, "not rendered"
    row.recipients = results
    return _settle(app, row, app.clock.now(), describe_error(error), random.random)


def _keeping(raw: bytes, mark: Mark) -> Mark:
    """`mark`, also storing the bytes a rendered row was sent as (and dropping its recipe)
    in the transaction that records the attempt: from the first attempt at delivery on,
    retries send the same mail. A row that never reached the server keeps its recipe, so
    a template edited meanwhile still applies to it."""

    def keeping(held: Outbox) -> Attempt:
        if held.recipe is not None:
            held.raw, held.recipe = raw, None
        return mark(held)

    return keeping


def _refusals(results: list[RecipientResult]) -> str:
    """Every recipient's refusal, on one line (a server's answer may have several)."""
    return "; ".join(
        f"{r['address']}: {' '.join(r['reply'].split())}"
        for r in results
        if r["state"] in (RecipientState.REFUSED, RecipientState.PENDING) and r["reply"]
    )


def _settle(app: App, row: Outbox, now: datetime, error: str, draw: Jitter) -> Attempt:
    """Set the row's state from its recipients' states: sent, failed, or pending (retry)."""
    results = list(row.recipients or [])
    states = {entry["state"] for entry in results}
    to = ", ".join(row.envelope_to)
    if RecipientState.PENDING in states:
        given_up = _given_up(app, row, now)
        if not given_up:
            deadline = row.created_at + app.config.smtp.give_up_after
            row.next_attempt_at = min(now + retry_delay(row.attempts, draw), deadline)
            row.last_error = one_line(error) or None
            log.warning(
                "outbox %d: %s to %s deferred (attempt %d, next at %s): %s",
                row.id,
                row.kind,
                to,
                row.attempts,
                row.next_attempt_at.isoformat(timespec="seconds"),
                row.last_error,
            )
            return "deferred"
        for entry in results:
            if entry["state"] == RecipientState.PENDING:
                entry["state"] = RecipientState.FAILED
                entry["reply"] = f"{given_up}: {entry['reply'] or error}"
        row.recipients = results
        error = f"{given_up}: {error}"
        states = {entry["state"] for entry in results}
    if states <= {RecipientState.ACCEPTED}:
        row.state, row.last_error = OutboxState.SENT, None
        log.info("outbox %d: %s <%s> sent to %s", row.id, row.kind, row.message_id, to)
        return "sent"
    row.state, row.last_error = OutboxState.FAILED, one_line(error or _refusals(results))
    log.error(
        "outbox %d: %s to %s failed for good after %d attempt(s): %s",
        row.id,
        row.kind,
        to,
        row.attempts,
        row.last_error,
    )
    _tell_the_ticket(row, now)
    return "failed"


def _tell_the_ticket(row: Outbox, now: datetime) -> None:
    """The ticket's own record of why its mail (an acknowledgement, a reply…) did not go out,
    written with the row's outcome."""
    session = object_session(row)
    if session is not None and row.ticket_id is not None:
        queries.insert_event(
            session,
            row.ticket_id,
            now,
            "mail_failed",
            {
                "outbox_id": row.id,
                "kind": row.kind,
                "to": list(row.envelope_to),
                "reason": row.last_error,
            },
        )


def _given_up(app: App, row: Outbox, now: datetime) -> str:
    """Why retrying stops here, or "" while it goes on."""
    smtp = app.config.smtp
    if now >= row.created_at + smtp.give_up_after:
        return (
            f"gave up after {format_duration(smtp.give_up_after, 'en')} and "
            f"{row.attempts} attempt(s)"
        )
    if smtp.max_attempts is not None and row.attempts >= smtp.max_attempts:
        return f"gave up after {row.attempts} attempts"
    return ""


def retry(app: App, row_id: int) -> Outbox:
    """Put a failed (or pending) row back at the head of the queue.

    Recipients the server already accepted are left out: they have the mail. A row older
    than smtp.give_up_after gets one attempt; a temporary failure then fails it again.
    """
    with app.transaction() as session:
        row = session.get(Outbox, row_id)
        if row is None:
            raise LookupError(f"no outbox row {row_id}")
        if row.state in (OutboxState.SENT, OutboxState.BOUNCED):
            raise ValueError(f"outbox row {row_id} was already sent ({row.state})")
        if row.recipients:
            again = (RecipientState.REFUSED, RecipientState.FAILED)
            row.recipients = [
                {**entry, "state": RecipientState.PENDING} if entry["state"] in again else entry
                for entry in row.recipients
            ]
        row.state, row.next_attempt_at = OutboxState.PENDING, app.clock.now()
        return row
