"""Process stored messages: parse, classify, thread and apply.

A claimed batch shares one transaction (one commit instead of one per message); each
message runs in its own savepoint, so a failing message undoes only its own work. A message
whose processing raises is retried a bounded number of times, then quarantined with its
reason; it never blocks the messages behind it (docs/architecture.md, invariant 4).
Attempts are counted and committed before work starts, so even a message that kills the
process is eventually set aside. Parsing and classifying run in a worker process under a
budget (inbound/prepare.py): a message over it is quarantined at once, and the worker
prepares the next message while this process writes the one before (several workers, for a
backlog, each its own message; the results are applied in arrival order all the same).

Processing takes turns, across instances too: on SQLite by `BEGIN IMMEDIATE`, one writer
at a time; on PostgreSQL per mailbox and per conversation (db/turn.py,
inbound/conversation.py): a batch holds its mailbox's lock from before its claim until its
commit, and the keys of every conversation it touches from before its first threading
decision. So no two instances work on one message, an attempt is counted only by the
instance that makes it, and every threading decision (follow-up or new ticket,
acknowledgement limits) sees all that a batch meeting it committed; instances processing
different mailboxes and customers never wait for each other.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from mailbridge.app import App, Step
from mailbridge.core.batching import BATCH_BYTES, leading
from mailbridge.core.correlate import thread_clues
from mailbridge.core.states import InboundState
from mailbridge.db import queries, tally
from mailbridge.db.blobs import BlobError
from mailbridge.db.models import InboundMessage
from mailbridge.db.outage import database_outage
from mailbridge.db.stored_bytes import raw_bytes, raw_of
from mailbridge.errors import describe_error, one_line
from mailbridge.faults import crash_point
from mailbridge.inbound import bounces
from mailbridge.inbound.acknowledge import LIMIT_WINDOW
from mailbridge.inbound.apply import Applied, apply_message
from mailbridge.inbound.conversation import MAX_REFERENCES
from mailbridge.inbound.prepare import Budget, OverBudget, Prepared, Preparer, worker_count
from mailbridge.inbound.turns import Turns, lock_batch
from mailbridge.tickets import participants, sender_lists, tallies

log = logging.getLogger(__name__)

BATCH = 50


@dataclass(frozen=True, slots=True)
class ProcessReport:
    processed: int = 0
    ignored: int = 0
    failed: int = 0
    quarantined: int = 0
    created: int = 0
    acknowledged: int = 0


def process_pending(
    app: App, stopping: Callable[[], bool] = lambda: False, preparer: Preparer | None = None
) -> ProcessReport:
    """Work through every new message; suspects (tried before) go one at a time. Between
    batches, `stopping()` can end the pass early: the rest waits for the next one.
    `preparer` (and its worker) may be kept from pass to pass; without one, the pass starts
    its own and ends it."""
    totals: dict[str, int] = dict.fromkeys(ProcessReport.__dataclass_fields__, 0)
    turns = Turns(app, lambda tried, mailbox: _claim(app, tried, mailbox))
    started = time.perf_counter()
    own = preparer is None
    preparer = preparer or new_preparer(app)
    preparer.configure(app.parse_limits, app.identity, parse_budget(app))
    try:
        while not stopping():
            done = _process_batch(app, preparer, turns, turns.claim)
            if done is None:
                break
            for counts in done:
                for key, value in counts.items():
                    totals[key] += value
    finally:
        if own:
            preparer.close()
    if totals["processed"] or totals["ignored"] or totals["failed"]:
        log.info(
            "processing pass: %.3f s, %.3f s of it waiting for turns (%s)",
            time.perf_counter() - started,
            turns.waited,
            turns.kind,
        )
    return ProcessReport(**totals)


def new_preparer(app: App) -> Preparer:
    """A Preparer with the configured limits and budget; call close() when done."""
    return Preparer(app.parse_limits, app.identity, parse_budget(app))


def parse_budget(app: App) -> Budget:
    tickets = app.config.tickets
    return Budget(
        tickets.parse_timeout.total_seconds(),
        tickets.parse_memory,
        worker_count(tickets.parse_workers),
    )


def _claim(app: App, tried: set[int], mailbox: str | None = None) -> Sequence[int]:
    """Count an attempt on the next batch (of one mailbox, on PostgreSQL) and commit it
    before work starts. The caller holds the turn on PostgreSQL (so this transaction must
    not take it again)."""
    with app.transaction() as session:
        waiting = select(InboundMessage.id, InboundMessage.attempts, InboundMessage.size).where(
            InboundMessage.state == InboundState.NEW
        )
        if mailbox is not None:
            waiting = waiting.where(InboundMessage.mailbox == mailbox)
        if tried:
            waiting = waiting.where(InboundMessage.id.not_in(tried))
        head = session.execute(waiting.order_by(InboundMessage.id).limit(BATCH)).all()
        ids = _in_arrival_order(head)
        if ids:
            session.execute(
                update(InboundMessage)
                .where(InboundMessage.id.in_(ids))
                .values(attempts=InboundMessage.attempts + 1)
            )
    tried.update(ids)
    return ids


def _in_arrival_order(head: Sequence[Row[int, int, int]]) -> list[int]:
    """The next batch, strictly in the order messages were stored: a reply must never be
    processed before the message it answers, or it would open a ticket of its own. Fresh
    messages go together, as many as `BATCH_BYTES` of raw mail allows (core/batching.py:
    a batch holds its messages' bytes); one tried before (its pass was killed, or it
    failed) goes alone when its turn comes, so a poison message costs only its own
    attempts."""
    if not head:
        return []
    if head[0].attempts > 0:
        return [head[0].id]
    fresh = []
    for row in head:
        if row.attempts > 0:
            break
        fresh.append(row)
    return [row.id for row in fresh[: leading((row.size for row in fresh), BATCH_BYTES)]]


def _process_batch(
    app: App, preparer: Preparer, turns: Turns, claim: Callable[[Session], Sequence[int]]
) -> list[dict[str, int]] | None:
    """Claim a batch and process it in one transaction; None when nothing is left. Should
    that transaction itself fail (its commit, a lost connection), fall back to one
    transaction per message so one bad message cannot hold back the others."""
    batch: Sequence[int] = ()
    try:
        with app.transaction() as session:
            batch = _begin_writing(session, claim)
            if not batch:
                return None
            loaded = _load(session, batch)
            raws = _plan(session, preparer, loaded)
            early: dict[int, Prepared | Exception] = {}
            if turns.narrow and loaded:
                early = _prepare_all(session, preparer, loaded, raws)
                loaded = lock_batch(app, session, turns, loaded, early)
            done = _process_together(app, session, preparer, loaded, raws, early)
    except Exception as exc:  # any failure must quarantine, never drop
        if not batch:
            raise  # the claim failed: no attempt was counted, nothing to set aside
        if database_outage(exc) is not None:
            _uncount(app, batch)
            raise  # the database, not these messages: they wait, unharmed, for the next pass
        if _contended(exc):
            # Two batches met on two tickets in opposite orders; PostgreSQL broke the tie
            # by failing this one, which is no message's fault: all of it goes again.
            log.info("batch of %d messages met another on its tickets; again", len(batch))
            _uncount(app, batch)
            turns.tried.difference_update(batch)
            return []
        if len(batch) == 1:
            return [_record_failure_alone(app, turns, batch[0], exc)]
        log.warning(
            "batch of %d messages failed, processing them one by one", len(batch), exc_info=exc
        )
        return [
            counts
            for inbound_id in batch
            for counts in _process_alone(app, preparer, turns, inbound_id)
        ]
    crash_point("after_process")
    return [_finish(result) for result in done]


def _prepare_all(
    session: Session,
    preparer: Preparer,
    loaded: Sequence[InboundMessage],
    raws: dict[int, bytes],
) -> dict[int, Prepared | Exception]:
    """Every message's parse and verdict, or what preparing it raised (raised again in
    its own savepoint): the conversation keys are known before the first decision."""
    early: dict[int, Prepared | Exception] = {}
    for inbound in loaded:
        try:
            raw = raws.get(inbound.id)
            early[inbound.id] = preparer.result(
                inbound.id, raw if raw is not None else raw_of(session, inbound)
            )
        except Exception as exc:  # noqa: BLE001 - it fails in its savepoint, as before
            early[inbound.id] = exc
    return early


def _contended(exc: BaseException) -> bool:
    """A deadlock PostgreSQL broke by failing this transaction (SQLSTATE 40P01)."""
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "sqlstate", None) == "40P01":
            return True
        seen = seen.__cause__ or getattr(seen, "orig", None)
    return False


def _uncount(app: App, batch: Sequence[int]) -> None:
    """Take back the attempt counted on messages an outage kept from being processed, so a
    long outage (a full disk retried every few seconds) cannot push them to quarantine.
    Best effort: a database that is down keeps the count, one attempt per outage."""
    try:
        with app.transaction() as session:
            session.execute(
                update(InboundMessage)
                .where(
                    InboundMessage.id.in_(batch),
                    InboundMessage.state == InboundState.NEW,
                    InboundMessage.attempts > 0,
                )
                .values(attempts=InboundMessage.attempts - 1)
            )
    except Exception:  # noqa: BLE001 - the outage itself, most likely
        log.debug("could not take back the attempts of %d messages", len(batch))


def _process_alone(
    app: App, preparer: Preparer, turns: Turns, inbound_id: int
) -> list[dict[str, int]]:
    """One message of a failed batch, already claimed, in a transaction of its own."""
    claim_one = lambda session: turns.claim_one(session, inbound_id)  # noqa: E731
    return _process_batch(app, preparer, turns, claim_one) or []


def _begin_writing(session: Session, claim: Callable[[Session], Sequence[int]]) -> Sequence[int]:
    """Take the turn to process, and claim what to process in it.

    pysqlite opens a transaction only at the first write, so a SAVEPOINT before it would
    be the outermost one and its RELEASE would commit each message on its own. IMMEDIATE
    takes the write lock at once, so a concurrent fetch cannot invalidate our snapshot; the
    claim comes first there, as its own write would wait for that lock. PostgreSQL claims
    under the turn instead (`Turns.claim`), so another instance's claim cannot count an
    attempt on a message claimed here until this transaction has settled it.
    """
    batch = claim(session)
    if batch and session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
    return batch


def _load(session: Session, batch: Sequence[int]) -> Sequence[InboundMessage]:
    query = (
        select(InboundMessage)
        .where(InboundMessage.id.in_(batch), InboundMessage.state == InboundState.NEW)
        .order_by(InboundMessage.id)
    )
    return session.scalars(query).all()


def _plan(
    session: Session, preparer: Preparer, loaded: Sequence[InboundMessage]
) -> dict[int, bytes]:
    """Hand the worker this batch and, read ahead, the first message of the next one: it
    prepares each message while this process writes the one before. Returns the raw
    bytes read, by message id; one whose file cannot be read is left out, and fails in
    its own savepoint when it is processed."""
    if not loaded or not preparer.isolated:
        return {}
    ahead = session.execute(
        select(
            InboundMessage.id,
            InboundMessage.raw,
            InboundMessage.raw_sha256,
        )
        .where(
            InboundMessage.state == InboundState.NEW,
            InboundMessage.attempts == 0,
            InboundMessage.id > loaded[-1].id,
        )
        .order_by(InboundMessage.id)
        .limit(1)
    )
    raws: dict[int, bytes] = {}
    for inbound in loaded:
        with contextlib.suppress(BlobError):
            raws[inbound.id] = raw_of(session, inbound)
    planned = list(raws.items())
    for row in ahead:
        with contextlib.suppress(BlobError):
            what = f"inbound message {row.id}"
            planned.append((row.id, raw_bytes(session, row.raw, row.raw_sha256, what)))
    preparer.plan(planned)
    return raws


# One message of a batch, processed: its Message-ID and what applying it did, or what it
# raised; logged and counted once the batch is committed.
Processed = tuple[InboundMessage, "str | None", "Applied | BaseException"]


def _process_together(
    app: App,
    session: Session,
    preparer: Preparer,
    loaded: Sequence[InboundMessage],
    raws: dict[int, bytes],
    early: dict[int, Prepared | Exception],
) -> list[Processed]:
    """On PostgreSQL, every message of the batch in one savepoint, with the counts and
    events it records written together at its end: two statements for the batch where a
    savepoint of each message's own costs two round trips per message. Should one message
    raise, that savepoint rolls back and the batch goes again with a savepoint per
    message, so the message fails alone; what was prepared is kept, not prepared again.
    On SQLite, a savepoint per message from the start."""
    prepared = dict(early)
    if session.get_bind().dialect.name == "sqlite":
        # A savepoint held open across the batch made SQLite's own memory climb with the
        # database (3 -> 35 MB over 5,000 mails, the process's peak 144 -> 180 MB); its
        # statements cost no round trip, so a savepoint per message costs nothing there.
        # The ledger's keys are still read once each, and the counts written together:
        # a statement's cost there is SQLAlchemy's, not the database's.
        with (
            tally.gathered(session),
            queries.ledger_known(session, app.clock.now() - LIMIT_WINDOW),
        ):
            return [
                _process_in_savepoint(
                    app, session, inbound, preparer, raws.get(inbound.id), prepared
                )
                for inbound in loaded
            ]
    senders = [_customer(p) for p in early.values()]
    try:
        with (
            session.begin_nested(),
            tally.gathered(session),
            queries.written_later(session, len(loaded)),
            bounces.states_known(session, filter(None, senders)),
            sender_lists.rules_known(session, filter(None, senders)),
            queries.ledger_known(session, app.clock.now() - LIMIT_WINDOW, filter(None, senders)),
            queries.batch_reads(session, _referred(app, early.values())),
            participants.rows_known(session, queries.locked_ids(session)),
        ):
            return [
                _apply_one(app, session, inbound, preparer, raws.get(inbound.id), prepared)
                for inbound in loaded
            ]
    except Exception as exc:  # any failure must quarantine, never drop
        if database_outage(exc) is not None or _contended(exc):
            raise  # not this message's fault: the whole batch waits, or goes again
        log.info("a message of a batch of %d failed: each again on its own", len(loaded))
    return [
        _process_in_savepoint(app, session, inbound, preparer, raws.get(inbound.id), prepared)
        for inbound in loaded
    ]


def _referred(app: App, prepared: Iterable[Prepared | Exception]) -> list[str]:
    """The Message-IDs the batch's mail refers to, the first few of each as threading
    reads them (inbound/conversation.py)."""
    tag_prefix = app.config.tickets.tag_prefix
    return [
        message_id
        for early in prepared
        if not isinstance(early, Exception)
        for message_id in thread_clues(early[0], tag_prefix).message_ids[:MAX_REFERENCES]
    ]


def _customer(prepared: Prepared | Exception) -> str:
    """The sender of customer mail (whose bounce state is asked about), else ""."""
    if isinstance(prepared, Exception) or prepared[1].kind != "customer":
        return ""
    return prepared[0].from_.address if prepared[0].from_ is not None else ""


def _process_in_savepoint(
    app: App,
    session: Session,
    inbound: InboundMessage,
    preparer: Preparer,
    raw: bytes | None,
    prepared: dict[int, Prepared | Exception],
) -> Processed:
    try:
        with session.begin_nested(), tally.gathered(session):
            return _apply_one(app, session, inbound, preparer, raw, prepared)
    except Exception as exc:  # any failure must quarantine, never drop
        if database_outage(exc) is not None or _contended(exc):
            raise  # not this message's fault: the whole batch waits, or goes again
        _store_failure(app, inbound, exc)
        return inbound, None, exc


def _apply_one(
    app: App,
    session: Session,
    inbound: InboundMessage,
    preparer: Preparer,
    raw: bytes | None,
    prepared: dict[int, Prepared | Exception],
) -> Processed:
    """Apply one message and settle its row; what preparing it gave (or raised) is kept in
    `prepared`."""
    early = prepared.get(inbound.id)
    if early is None:
        try:
            if raw is None:  # a missing or damaged file fails here, with its row named
                raw = raw_of(session, inbound)
            early = preparer.result(inbound.id, raw)
        except Exception as exc:
            if database_outage(exc) is None:
                prepared[inbound.id] = exc
            raise
        prepared[inbound.id] = early
    if isinstance(early, Exception):
        raise early
    parsed, verdict = early
    step = Step(session, app, app.clock.now())
    applied = apply_message(step, inbound, parsed, verdict)
    queries.update_later(
        session,
        inbound,
        state=applied.state,
        processed_at=step.now,
        last_error=None,
        ticket_id=applied.ticket_id,
        reason=applied.reason or None,
    )
    kind = queries.article_kind_of(session, inbound.id) or applied.state
    tallies.message_settled(step, inbound.mailbox, kind)
    return inbound, parsed.message_id, applied


def _finish(result: Processed) -> dict[str, int]:
    """Log and count one message, once its transaction is committed."""
    inbound, message_id, outcome = result
    if isinstance(outcome, BaseException):
        return _log_failure(
            inbound.id, inbound.attempts, inbound.state, inbound.last_error or "", outcome
        )
    _log_outcome(inbound.id, inbound.mailbox, message_id, outcome)
    return {
        "processed": outcome.state == InboundState.PROCESSED,
        "ignored": outcome.state == InboundState.IGNORED,
        "created": outcome.action == "created",
        "acknowledged": outcome.acknowledged,
    }


def _record_failure_alone(
    app: App, turns: Turns, inbound_id: int, exc: BaseException
) -> dict[str, int]:
    """A message whose own transaction failed: record why in a fresh one."""
    with app.transaction() as session:
        turns.lock_for(session, inbound_id)
        inbound = session.get_one(InboundMessage, inbound_id)
        if inbound.state != InboundState.NEW:  # another instance has settled it meanwhile
            log.info("message %d: %s elsewhere meanwhile", inbound_id, inbound.state)
            return {}
        _store_failure(app, inbound, exc)
        result = (inbound.id, inbound.attempts, inbound.state, inbound.last_error or "")
    return _log_failure(*result, exc)


def _store_failure(app: App, inbound: InboundMessage, exc: BaseException) -> None:
    """Record why; quarantine after the last attempt, or at once when another attempt
    would cost the same budget again."""
    inbound.last_error = describe_error(exc)
    if inbound.attempts >= app.config.tickets.max_attempts or isinstance(exc, OverBudget):
        inbound.state = InboundState.QUARANTINED


def _log_failure(
    inbound_id: int, attempts: int, state: str, error: str, exc: BaseException
) -> dict[str, int]:
    if state == InboundState.QUARANTINED:
        log.error("message %d quarantined after %d attempt(s): %s", inbound_id, attempts, error)
        return {"failed": 1, "quarantined": 1}
    log.warning(
        "message %d failed (attempt %d), will retry: %s", inbound_id, attempts, error, exc_info=exc
    )
    return {"failed": 1}


def _log_outcome(inbound_id: int, mailbox: str, message_id: str | None, outcome: Applied) -> None:
    ticket = f"#{outcome.ticket_number}" if outcome.ticket_number else "-"
    details = ", acknowledgement queued" if outcome.acknowledged else ""
    if outcome.reason:
        details += f" ({outcome.reason})"
    log.info(
        "message %d <%s> from %s: %s ticket %s%s",
        inbound_id,
        one_line(message_id, 200) if message_id else "no Message-ID",
        mailbox,
        outcome.action,
        ticket,
        details,
    )
