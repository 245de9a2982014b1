"""Parse and classify stored messages, each within a budget of time and memory.

parse_message and classify are pure: bytes and configuration in, plain data out. They run in
a worker process (inbound/parse_worker.py), one message at a time, so that a message that
would keep them busy for minutes, or fill memory, can be stopped: past `Budget.seconds` the
worker is killed, the message gets OverBudget (quarantined at once: another try would cost
the same) and a fresh worker, a fork of a preloaded server, takes the next one. While this
process writes one message's ticket, the worker already prepares the next planned one.

A backlog (more than `widen_at` messages planned) is spread over `Budget.workers` workers,
each preparing one message at a time under that message's own deadline, so the processors
parse while this process writes; the outcomes wait, keyed by message, until the caller asks
for them in its own (arrival) order. Fewer messages go to the first worker alone, so a
daemon fed a few mails at a time forks nothing per mail; the extra workers end by
themselves after `linger` seconds without work.

Whichever process prepares a message, the caller gets what preparing it here would give:
the result, or the exception parse or classify raised. A worker that dies while preparing a
message gets one more try at it alone, in a fresh worker: if that dies too, the message gets
ParserCrashed (retried on later passes, then quarantined, like any failure). Where no worker
can run at all, messages are prepared in this process, without a budget, and the log says so.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

from mailbridge.core.classify import Identity, classify
from mailbridge.core.message import ParsedMessage, ParseLimits, Verdict
from mailbridge.core.parse import parse_message
from mailbridge.inbound.parse_worker import OverMemory, ParseWorker, WorkerGone

log = logging.getLogger(__name__)

Prepared = tuple[ParsedMessage, Verdict]
PrepareFunction = Callable[[bytes, ParseLimits, Identity], Prepared]
# One attempt at preparing a message: (True, result) or (False, what it raised).
Attempt = tuple[bool, "Prepared | BaseException"]


class ParserCrashed(Exception):
    """The process preparing this message ended while working on it."""


class OverBudget(Exception):
    """Preparing this message took more time or memory than its budget; the process doing
    it was stopped. Another try would cost the same: the message is quarantined at once."""


@dataclass(frozen=True, slots=True)
class Budget:
    seconds: float = 10.0  # wall-clock time to prepare one message
    memory: int | None = None  # bytes a worker may take for a message, beyond its own
    workers: int = 1  # processes preparing messages at once, for a backlog


# A plan of more messages than this is a backlog, worth the extra workers: each costs a
# fork (a few ms, the price of a few messages), and a daemon fed by IDLE sees one to a few
# messages a pass, which the first worker, started with the daemon, prepares alone.
WIDEN_AT = 16
# Seconds an extra worker waits for the next backlog before it ends by itself (the first
# one stays): a burst that goes on finds them ready, a quiet mailbox costs one process.
LINGER = 60.0
WORKERS_CAP = 8  # "auto": no more than this, however many processors there are


def worker_count(setting: int | str) -> int:
    """`[tickets] parse_workers`: a number, or "auto" for the processors this process may
    run on (its CPU affinity, as a container or `taskset` sets it), capped."""
    if setting != "auto":
        return max(int(setting), 1)
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        available = os.cpu_count() or 1
    return max(min(available, WORKERS_CAP), 1)


def prepare(raw: bytes, limits: ParseLimits, identity: Identity) -> Prepared:
    parsed = parse_message(raw, limits)
    return parsed, classify(parsed, identity)


@dataclass(slots=True)
class _InFlight:
    inbound_id: int
    raw: bytes
    deadline: float  # time.monotonic()


@dataclass(eq=False, slots=True)
class _Slot:
    """One worker and the message it prepares, if any."""

    worker: ParseWorker
    flight: _InFlight | None = None
    idle_since: float = 0.0  # time.monotonic() of its last answer


class Preparer:
    """Prepares messages in workers; see the module doc. Long-lived: a daemon keeps one
    (and its first worker) from pass to pass.

    `plan` names the messages about to be processed, in order; `result` returns a
    message's outcome, in whatever order the caller asks. A plan of more than `widen_at`
    messages is a backlog: up to `budget.workers` workers prepare it at once, the extra
    ones ending by themselves after `linger` seconds without work.
    """

    def __init__(
        self,
        limits: ParseLimits,
        identity: Identity,
        budget: Budget = Budget(),
        *,
        function: PrepareFunction = prepare,
        isolated: bool = True,
        widen_at: int = WIDEN_AT,
        linger: float = LINGER,
    ) -> None:
        self.limits, self.identity, self.budget = limits, identity, budget
        self.widen_at, self.linger = widen_at, linger
        self._function = function
        self._slots: list[_Slot] = []
        if isolated:
            self._slots.append(_Slot(ParseWorker(budget.memory)))
            self._resize(budget.workers)
        self._wide = False  # the plan is a backlog: every slot takes messages
        self._extras_fail = False  # an extra worker could not start: one is enough then
        self._planned: list[tuple[int, bytes]] = []
        self._ready: dict[int, Attempt] = {}  # answered before the caller asked
        # One caller at a time: a daemon closing while a late pass still works waits for it.
        self._lock = threading.RLock()

    @property
    def isolated(self) -> bool:
        """Whether messages are prepared in a worker, under the budget."""
        return bool(self._slots)

    def configure(self, limits: ParseLimits, identity: Identity, budget: Budget) -> None:
        """Settings for the messages sent from now on (a new memory budget applies from
        the next worker started)."""
        with self._lock:
            self.limits, self.identity, self.budget = limits, identity, budget
            if self._slots:
                self._resize(budget.workers)
            for slot in self._slots:
                slot.worker.memory_limit = budget.memory

    def start(self) -> None:
        """Start the first worker now, rather than with the first message; the others
        start with a backlog."""
        with self._lock:
            if self._slots:
                try:
                    self._slots[0].worker.start()
                except OSError as exc:
                    self._give_up(exc)

    def plan(self, messages: Sequence[tuple[int, bytes]]) -> None:
        with self._lock:
            self._planned = list(messages)
            wanted = {inbound_id for inbound_id, _ in messages}
            self._ready = {i: outcome for i, outcome in self._ready.items() if i in wanted}
            for slot in self._slots:
                if slot.flight is not None and slot.flight.inbound_id not in wanted:
                    self._stop(slot)  # read ahead for nothing: a fork costs less than waiting
            self._wide = len(wanted - self._ready.keys()) > self.widen_at
            self._read_ahead()

    def result(self, inbound_id: int, raw: bytes) -> Prepared:
        """The message's parse and verdict; raises what preparing it raised."""
        with self._lock:
            self._planned = [(i, r) for i, r in self._planned if i != inbound_id]
            outcome = self._ready.pop(inbound_id, None)
            if outcome is None and self._slots:
                outcome = self._from_worker(inbound_id, raw)
            if outcome is not None:
                self._harvest()
                self._read_ahead()
        if outcome is None:  # no worker: here
            return self._function(raw, self.limits, self.identity)
        return _unpack(outcome)

    def close(self) -> None:
        with self._lock:
            for slot in self._slots:
                self._close(slot)
            self._planned.clear()
            self._ready.clear()

    def __enter__(self) -> Preparer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _resize(self, workers: int) -> None:
        """As many slots as workers: the first without an idle limit, the extra ones
        ending by themselves when a backlog is done."""
        while len(self._slots) > max(workers, 1):
            self._close(self._slots.pop())  # its message, if any, is sent again if asked
        while len(self._slots) < workers:
            self._slots.append(_Slot(ParseWorker(self.budget.memory, idle_exit=self.linger)))

    def _active(self) -> list[_Slot]:
        """The slots that take new messages: all of them for a backlog, else the first."""
        wide = self._wide and not self._extras_fail
        return self._slots if wide else self._slots[:1]

    def _from_worker(self, inbound_id: int, raw: bytes) -> Attempt | None:
        """The outcome from a worker, or None when no worker can run."""
        slot = next((s for s in self._slots if _preparing(s, inbound_id)), None)
        if slot is None:
            slot = self._dispatch(inbound_id, raw)
            if inbound_id in self._ready:  # answered while a slot was freed for it
                return self._ready.pop(inbound_id)
            if slot is None:
                return None
        return self._await(slot)

    def _dispatch(self, inbound_id: int, raw: bytes) -> _Slot | None:
        """Hand the message to a free worker, waiting for one to finish if all are busy;
        None when no worker can be started."""
        while self._slots:
            slot = self._free_slot()
            if slot is not None and self._send(slot, inbound_id, raw):
                return slot
        return None

    def _free_slot(self) -> _Slot | None:
        active = self._active()
        for slot in active:
            if slot.flight is None:
                return slot
        busy = min(active, key=lambda s: s.flight.deadline if s.flight else 0.0)
        assert busy.flight is not None
        inbound_id = busy.flight.inbound_id
        self._ready[inbound_id] = self._await(busy)  # kept for when it is asked
        return busy if busy in self._slots and busy.flight is None else None

    def _send(self, slot: _Slot, inbound_id: int, raw: bytes) -> bool:
        """Hand the message to the slot's worker (a fresh one if it ended idle); False
        when no worker can be started for it."""
        worker, now = slot.worker, time.monotonic()
        if worker.idle_exit is not None and now - slot.idle_since > worker.idle_exit / 2:
            worker.kill()  # about to end by itself: rather a fresh one than a race
        request = (self._function, (raw, self.limits, self.identity))
        try:
            try:
                worker.send(request)
            except WorkerGone:  # it ended while idle: a fresh one
                worker.send(request)
        except (OSError, WorkerGone) as exc:
            if slot is self._slots[0]:
                self._give_up(exc)
            else:
                self._no_extras(exc)
            return False
        slot.flight = _InFlight(inbound_id, raw, time.monotonic() + self.budget.seconds)
        return True

    def _await(self, slot: _Slot, *, again: bool = False) -> Attempt:
        flight = slot.flight
        assert flight is not None
        try:
            outcome = slot.worker.receive(flight.deadline - time.monotonic())
        except WorkerGone:
            slot.flight = None
            return self._crashed(slot, flight) if again else self._alone(flight)
        slot.flight, slot.idle_since = None, time.monotonic()
        if outcome is None:
            slot.worker.kill()
            log.error(
                "message %d: parsing it took longer than %g s; the parsing process was stopped",
                flight.inbound_id,
                self.budget.seconds,
            )
            return False, OverBudget(
                f"parsing took longer than {self.budget.seconds:g} s "
                "([tickets] parse_timeout): the parser was stopped"
            )
        if not outcome[0] and isinstance(outcome[1], OverMemory):
            slot.worker.kill()  # it exits by itself; this reaps it
            log.error(
                "message %d: parsing it needed more memory than the parsing process "
                "may use; that process was stopped",
                flight.inbound_id,
            )
            return False, OverBudget(f"{outcome[1]} ([tickets] parse_memory)")
        return outcome

    def _alone(self, flight: _InFlight) -> Attempt:
        """The worker died preparing this message: once more, in a fresh one."""
        slot = self._dispatch(flight.inbound_id, flight.raw)
        if slot is None:
            return self._here(flight.raw)
        return self._await(slot, again=True)

    def _crashed(self, slot: _Slot, flight: _InFlight) -> Attempt:
        """A fresh worker died on this message too. If one also dies on an empty message,
        workers cannot run here at all: this process prepares the messages from now on."""
        if not self._answers_empty(slot):
            self._give_up(RuntimeError("the parsing process ends even on an empty message"))
            return self._here(flight.raw)
        log.error("message %d: the parsing process ended while preparing it", flight.inbound_id)
        return False, ParserCrashed(
            "the parsing process ended unexpectedly while preparing this message"
        )

    def _answers_empty(self, slot: _Slot) -> bool:
        if not self._slots or not self._send(slot, 0, b"") or slot.flight is None:
            return False
        flight, slot.flight = slot.flight, None
        try:
            return slot.worker.receive(flight.deadline - time.monotonic()) is not None
        except WorkerGone:
            return False

    def _here(self, raw: bytes) -> Attempt:
        try:
            return True, self._function(raw, self.limits, self.identity)
        except Exception as exc:  # noqa: BLE001 - the caller records it for this message
            return False, exc

    def _harvest(self) -> None:
        """Collect what the workers have answered (or overran), so each can take the next
        message while this process writes."""
        for slot in list(self._slots):
            flight = slot.flight
            if flight is not None and (
                flight.deadline <= time.monotonic() or slot.worker.answered()
            ):
                self._ready[flight.inbound_id] = self._await(slot)

    def _read_ahead(self) -> None:
        """Give each idle worker the next planned message, to prepare while this process
        writes the one before it; at most as many held prepared as there are workers."""
        active = self._active()
        taken = {s.flight.inbound_id for s in self._slots if s.flight is not None}
        waiting = (m for m in self._planned if m[0] not in self._ready and m[0] not in taken)
        for slot in active:
            if slot.flight is not None or slot not in self._slots:
                continue
            if len(self._ready) >= len(active):
                return
            message = next(waiting, None)
            if message is None:
                return
            self._send(slot, *message)

    def _stop(self, slot: _Slot) -> None:
        slot.flight = None
        slot.worker.kill()

    def _close(self, slot: _Slot) -> None:
        if slot.flight is not None:
            self._stop(slot)
        slot.worker.close()

    def _no_extras(self, exc: BaseException) -> None:
        log.warning("cannot start another process for parsing (%s): parsing in one", exc)
        self._extras_fail = True

    def _give_up(self, exc: BaseException) -> None:
        log.error(
            "cannot run a process for parsing (%s): parsing in this one, without a "
            "time or memory budget",
            exc,
        )
        for slot in self._slots:
            slot.worker.kill()
        self._slots = []


def _preparing(slot: _Slot, inbound_id: int) -> bool:
    return slot.flight is not None and slot.flight.inbound_id == inbound_id


def _unpack(outcome: Attempt) -> Prepared:
    ok, value = outcome
    if ok:
        assert not isinstance(value, BaseException)
        return value
    assert isinstance(value, BaseException)
    raise value
