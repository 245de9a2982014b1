"""Delivering webhook rows (kind `webhook`, queued by outbound/webhooks.py): each row's
stored body to its `[[webhook]]`, signed afresh at every attempt, with the mail's backoff
(outbound/send.py `retry_delay`) on a timeout, a network failure, 408, 429 or 5xx, until
the webhook's `max_attempts` or `give_up_after`; any other 4xx (or 3xx) fails the row at
once. A failed row says why in `last_error` (`mailbridge outbox list`), and leaves a
`webhook_failed` event on its ticket.

Several instances, on PostgreSQL or SQLite alike, deliver each row once: a row is claimed
in a short transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on
SQLite) that moves its `next_attempt_at` a lease ahead, so nobody else takes it, and its
outcome is recorded in another; no transaction stays open while the endpoint answers. A
sender that dies mid-delivery leaves its row to be taken again once the lease has passed:
the same body, with the same `X-Mailbridge-Delivery` id, which receivers use to drop a
repeat.

A pass runs `WORKERS` deliveries at once, each bounded by its webhook's `timeout`, in
threads of its own: a slow endpoint holds up neither the mail (service/sender.py runs the
two side by side) nor the database calls of the rest of the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbridge import __version__
from mailbridge.adapters.webhook_http import HttpAnswer, HttpRequest, RetryLater, send_request
from mailbridge.app import App
from mailbridge.config.webhooks import WebhookConfig
from mailbridge.core.humanize import format_duration
from mailbridge.core.states import WEBHOOK_KIND, OutboxState, RecipientState
from mailbridge.core.webhook_events import SIGNATURE_HEADER, sign
from mailbridge.db import queries
from mailbridge.db.models import Outbox, RecipientResult
from mailbridge.errors import DeliveryError, PermanentError, TransientError, one_line
from mailbridge.outbound.send import Jitter, retry_delay

__all__ = ["WORKERS", "HookReport", "deliver_webhooks"]

log = logging.getLogger(__name__)

WORKERS = 4  # deliveries at once in one pass
# How long a claimed row is nobody else's: the longest timeout (60 s) and then some.
LEASE = timedelta(minutes=2)
GRACE = 2.0  # seconds past the timeout before the thread is no longer waited for
Post = Callable[[HttpRequest], HttpAnswer]  # adapters/webhook_http.py `send_request`
Result = Literal["delivered", "deferred", "failed", "lost"]


@dataclass(frozen=True, slots=True)
class HookReport:
    delivered: int = 0
    deferred: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row this sender holds until `leased_until`."""

    id: int
    name: str  # the webhook's
    event: str
    delivery_id: str
    body: bytes
    leased_until: datetime


async def deliver_webhooks(
    app: App, *, post: Post = send_request, draw: Jitter = random.random, workers: int = WORKERS
) -> HookReport:
    """Deliver every due webhook row, `workers` at once; returns what became of them."""
    # Threads of the pass's own, for its requests and its database calls alike: the daemon's
    # shared pool is never taken up by an endpoint that hangs (twice the workers: a thread
    # whose request is no longer waited for may still be running).
    executor = ThreadPoolExecutor(max_workers=2 * workers, thread_name_prefix="webhook")
    counts: Counter[Result] = Counter()
    tasks: list[asyncio.Future[None]] = []
    try:
        # One look first: most passes (every mail sent wakes one) find nothing due, and
        # then cost one query and one thread, not `workers` of each.
        first = await asyncio.get_running_loop().run_in_executor(executor, claim_next, app)
        if first is None:
            return HookReport()
        tasks = [
            asyncio.ensure_future(_work(app, executor, post, draw, counts, None if i else first))
            for i in range(workers)
        ]
        await asyncio.gather(*tasks)
    finally:
        # One worker's failure (the database went away) ends the pass: the others stop too,
        # and their leased rows are taken again once the lease has passed.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        executor.shutdown(wait=False, cancel_futures=True)  # a stuck thread is not waited for
    return HookReport(counts["delivered"], counts["deferred"], counts["failed"])


async def _work(
    app: App,
    executor: ThreadPoolExecutor,
    post: Post,
    draw: Jitter,
    counts: Counter[Result],
    claimed: Claimed | None,
) -> None:
    """Deliver `claimed` (when given) and then every row this worker can claim."""
    loop = asyncio.get_running_loop()
    if claimed is None:
        claimed = await loop.run_in_executor(executor, claim_next, app)
    while claimed is not None:
        hook = webhook_named(app, claimed.name)
        outcome = await _attempt(app, executor, post, hook, claimed)
        result = await loop.run_in_executor(executor, record, app, claimed, hook, outcome, draw)
        counts[result] += 1
        claimed = await loop.run_in_executor(executor, claim_next, app)


def claim_next(app: App) -> Claimed | None:
    """The longest due webhook row, leased to this sender; None when none is due."""
    now = app.clock.now()
    due = (
        select(Outbox)
        .where(
            Outbox.state == OutboxState.PENDING,
            Outbox.next_attempt_at <= now,
            Outbox.kind == WEBHOOK_KIND,
        )
        .order_by(Outbox.next_attempt_at, Outbox.id)
        .limit(1)
    )
    with app.sessions() as session:
        if session.scalar(due.with_only_columns(Outbox.id)) is None:
            return None  # the usual case: one index probe, no write lock
    with app.transaction() as session:
        if _lock_for_writing(session):
            due = due.with_for_update(skip_locked=True)
        row = session.scalars(due).first()
        if row is None:
            return None
        row.next_attempt_at = now + LEASE
        return Claimed(
            row.id, row.envelope_to[0], row.envelope_from, row.message_id, row.raw, now + LEASE
        )


def webhook_named(app: App, name: str) -> WebhookConfig | None:
    """The configured webhook a row names (read at each attempt: a reload may change it)."""
    return next((hook for hook in app.config.webhook if hook.label == name), None)


def build_request(hook: WebhookConfig, claimed: Claimed, now: datetime) -> HttpRequest:
    """The request for one attempt: the stored body, signed with this moment's timestamp."""
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": f"mailbridge/{__version__}",
        "X-Mailbridge-Event": claimed.event,
        "X-Mailbridge-Delivery": claimed.delivery_id,
    }
    if hook.secret is not None:
        key = hook.secret.get_secret_value().encode("utf-8")
        headers[SIGNATURE_HEADER] = sign(key, int(now.timestamp()), claimed.body)
    method, url = "POST", hook.url or ""
    if hook.format == "matrix" and hook.token is not None:
        # The room's send endpoint takes a transaction id: the delivery's, so a repeat is
        # one message in the room (Matrix drops it).
        method, url = "PUT", f"{url.rstrip('/')}/{quote(claimed.delivery_id, safe='')}"
        headers["Authorization"] = f"Bearer {hook.token.get_secret_value()}"
    timeout = hook.timeout.total_seconds()
    return HttpRequest(method, url, headers, claimed.body, timeout, hook.ca_file)


@dataclass(frozen=True, slots=True)
class Outcome:
    answer: HttpAnswer | None = None
    error: DeliveryError | None = None


async def _attempt(
    app: App,
    executor: ThreadPoolExecutor,
    post: Post,
    hook: WebhookConfig | None,
    claimed: Claimed,
) -> Outcome:
    if hook is None:
        return Outcome(error=PermanentError(f"no [[webhook]] named {claimed.name!r} any more"))
    request = build_request(hook, claimed, app.clock.now())
    running = asyncio.get_running_loop().run_in_executor(executor, post, request)
    try:
        return Outcome(answer=await asyncio.wait_for(running, request.timeout + GRACE))
    except TimeoutError:
        return Outcome(error=TransientError(f"no answer within {request.timeout:g} s"))
    except DeliveryError as exc:
        return Outcome(error=exc)
    except Exception as exc:  # the adapter's own bug must not lose the row
        log.exception("outbox %d: webhook %s: the request failed", claimed.id, claimed.name)
        return Outcome(error=TransientError(f"{type(exc).__name__} while sending"))


def record(
    app: App, claimed: Claimed, hook: WebhookConfig | None, outcome: Outcome, draw: Jitter
) -> Result:
    """The attempt's outcome on the row, unless the row is no longer this sender's."""
    with app.transaction() as session:
        locked = _lock_for_writing(session)
        row = session.get(Outbox, claimed.id, with_for_update=locked or None)
        if (
            row is None
            or row.state != OutboxState.PENDING
            or row.next_attempt_at != claimed.leased_until
        ):
            log.warning(
                "outbox %d: webhook %s: the row changed during delivery (retried, or its "
                "ticket deleted); this attempt's outcome is not recorded",
                claimed.id,
                claimed.name,
            )
            return "lost"
        now = app.clock.now()
        row.attempts += 1
        if outcome.answer is not None:
            return _delivered(row, claimed, outcome.answer, now)
        assert outcome.error is not None
        return _not_delivered(session, row, claimed, hook, outcome.error, now, draw)


def _delivered(row: Outbox, claimed: Claimed, answer: HttpAnswer, now: datetime) -> Result:
    reply = f"{answer.status} {answer.reason}".rstrip()
    row.state, row.sent_at, row.last_error = OutboxState.SENT, now, None
    row.recipients = [_result(claimed.name, RecipientState.ACCEPTED, answer.status, reply)]
    log.info(
        "outbox %d: webhook %s: %s delivered (%s)", row.id, claimed.name, row.envelope_from, reply
    )
    return "delivered"


def _not_delivered(
    session: Session,
    row: Outbox,
    claimed: Claimed,
    hook: WebhookConfig | None,
    error: DeliveryError,
    now: datetime,
    draw: Jitter,
) -> Result:
    reason = one_line(str(error))
    given_up = _given_up(hook, row, now) if isinstance(error, TransientError) else ""
    if isinstance(error, TransientError) and not given_up and hook is not None:
        pause = retry_delay(row.attempts, draw)
        if isinstance(error, RetryLater) and error.retry_after is not None:
            pause = max(pause, timedelta(seconds=error.retry_after))
        row.next_attempt_at = min(now + pause, row.created_at + hook.give_up_after)
        row.last_error = reason
        row.recipients = [_result(claimed.name, RecipientState.PENDING, error.code, reason)]
        log.warning(
            "outbox %d: webhook %s: %s deferred (attempt %d, next at %s): %s",
            row.id,
            claimed.name,
            row.envelope_from,
            row.attempts,
            row.next_attempt_at.isoformat(timespec="seconds"),
            reason,
        )
        return "deferred"
    state = RecipientState.FAILED if given_up else RecipientState.REFUSED
    row.state = OutboxState.FAILED
    row.last_error = one_line(f"{given_up}: {reason}" if given_up else reason)
    row.recipients = [_result(claimed.name, state, error.code, row.last_error)]
    log.error(
        "outbox %d: webhook %s: %s failed for good after %d attempt(s): %s",
        row.id,
        claimed.name,
        row.envelope_from,
        row.attempts,
        row.last_error,
    )
    if row.ticket_id is not None:  # not through add_event: this event announces nothing
        data = {"outbox_id": row.id, "webhook": claimed.name, "event": row.envelope_from}
        queries.insert_event(
            session, row.ticket_id, now, "webhook_failed", {**data, "reason": row.last_error}
        )
    return "failed"


def _given_up(hook: WebhookConfig | None, row: Outbox, now: datetime) -> str:
    """Why retrying stops here, or "" while it goes on."""
    if hook is None:
        return "the webhook is no longer configured"
    if now >= row.created_at + hook.give_up_after:
        within = format_duration(hook.give_up_after, "en")
        return f"gave up after {within} and {row.attempts} attempt(s)"
    if row.attempts >= hook.max_attempts:
        return f"gave up after {row.attempts} attempts"
    return ""


def _result(name: str, state: RecipientState, code: int | None, reply: str) -> RecipientResult:
    return RecipientResult(address=name, state=state, code=code, reply=reply)


def _lock_for_writing(session: Session) -> bool:
    """SQLite: take the write lock first, so two senders claim one after the other. True on
    PostgreSQL, where the row itself is locked (`SKIP LOCKED` when claiming)."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        return False
    return True
