"""Parse and classify stored messages, each within a budget of time and memory.

parse_message and classify are pure: bytes and configuration in, plain data out. They run in
a worker process (inbound/parse_worker.py), one message at a time, so that a message that
would keep them busy for minutes, or fill memory, can be stopped: past `Budget.seconds` the
worker is killed, the message gets OverBudget (quarantined at once: another try would cost
the same) and a fresh worker, a fork of a preloaded server, takes the next one. While this
process writes one message's ticket, the worker already prepares the next planned one.

Whichever process prepares a message, the caller gets what preparing it here would give:
the result, or the exception parse or classify raised. A worker that dies while preparing a
message gets one more try at it alone, in a fresh worker: if that dies too, the message gets
ParserCrashed (retried on later passes, then quarantined, like any failure). Where no worker
can run at all, messages are prepared in this process, without a budget, and the log says so.
"""

from __future__ import annotations

import logging
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


def prepare(raw: bytes, limits: ParseLimits, identity: Identity) -> Prepared:
    parsed = parse_message(raw, limits)
    return parsed, classify(parsed, identity)


@dataclass(slots=True)
class _InFlight:
    inbound_id: int
    raw: bytes
    deadline: float  # time.monotonic()


class Preparer:
    """Prepares messages in a worker; see the module doc. Long-lived: a daemon keeps one
    (and its worker) from pass to pass.

    `plan` names the messages about to be processed, in order; `result` returns a
    message's outcome, in whatever order the caller asks.
    """

    def __init__(
        self,
        limits: ParseLimits,
        identity: Identity,
        budget: Budget = Budget(),
        *,
        function: PrepareFunction = prepare,
        isolated: bool = True,
    ) -> None:
        self.limits, self.identity, self.budget = limits, identity, budget
        self._function = function
        self._worker = ParseWorker(budget.memory) if isolated else None
        self._planned: list[tuple[int, bytes]] = []
        self._in_flight: _InFlight | None = None
        self._ready: dict[int, Attempt] = {}  # answered before the caller asked
        # One caller at a time: a daemon closing while a late pass still works waits for it.
        self._lock = threading.RLock()

    @property
    def isolated(self) -> bool:
        """Whether messages are prepared in a worker, under the budget."""
        return self._worker is not None

    def configure(self, limits: ParseLimits, identity: Identity, budget: Budget) -> None:
        """Settings for the messages sent from now on (a new memory budget applies from
        the next worker started)."""
        with self._lock:
            self.limits, self.identity, self.budget = limits, identity, budget
            if self._worker is not None:
                self._worker.memory_limit = budget.memory

    def start(self) -> None:
        """Start the worker now, rather than with the first message."""
        with self._lock:
            if self._worker is not None:
                try:
                    self._worker.start()
                except OSError as exc:
                    self._give_up(exc)

    def plan(self, messages: Sequence[tuple[int, bytes]]) -> None:
        with self._lock:
            self._planned = list(messages)
            wanted = {inbound_id for inbound_id, _ in messages}
            self._ready = {i: outcome for i, outcome in self._ready.items() if i in wanted}
            if self._in_flight is not None and self._in_flight.inbound_id not in wanted:
                self._stop_in_flight()  # read ahead for nothing: a fork costs less than waiting
            self._read_ahead()

    def result(self, inbound_id: int, raw: bytes) -> Prepared:
        """The message's parse and verdict; raises what preparing it raised."""
        with self._lock:
            self._planned = [(i, r) for i, r in self._planned if i != inbound_id]
            outcome = self._ready.pop(inbound_id, None)
            if outcome is None and self._worker is not None:
                outcome = self._from_worker(inbound_id, raw)
            if outcome is not None:
                self._read_ahead()
        if outcome is None:  # no worker: here
            return self._function(raw, self.limits, self.identity)
        return _unpack(outcome)

    def close(self) -> None:
        with self._lock:
            if self._in_flight is not None:
                self._stop_in_flight()
            if self._worker is not None:
                self._worker.close()
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

    def _from_worker(self, inbound_id: int, raw: bytes) -> Attempt | None:
        """The outcome from the worker, or None when no worker can run."""
        flight = self._in_flight
        if flight is not None and flight.inbound_id != inbound_id:
            self._ready[flight.inbound_id] = self._await(flight)  # kept for when it is asked
            if inbound_id in self._ready:
                return self._ready.pop(inbound_id)
        if self._in_flight is None and not self._send(inbound_id, raw):
            return None
        assert self._in_flight is not None
        return self._await(self._in_flight)

    def _send(self, inbound_id: int, raw: bytes) -> bool:
        """Hand the message to the worker (a fresh one if it died idle); False when no
        worker can be started."""
        if self._worker is None:
            return False
        request = (self._function, (raw, self.limits, self.identity))
        try:
            try:
                self._worker.send(request)
            except WorkerGone:  # it ended while idle: a fresh one
                self._worker.send(request)
        except (OSError, WorkerGone) as exc:
            self._give_up(exc)
            return False
        self._in_flight = _InFlight(inbound_id, raw, time.monotonic() + self.budget.seconds)
        return True

    def _await(self, flight: _InFlight, *, again: bool = False) -> Attempt:
        assert self._worker is not None
        try:
            outcome = self._worker.receive(flight.deadline - time.monotonic())
        except WorkerGone:
            self._in_flight = None
            return self._crashed(flight) if again else self._alone(flight)
        self._in_flight = None
        if outcome is None:
            self._worker.kill()
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
            self._worker.kill()  # it exits by itself; this reaps it
            log.error(
                "message %d: parsing it needed more memory than the parsing process "
                "may use; that process was stopped",
                flight.inbound_id,
            )
            return False, OverBudget(f"{outcome[1]} ([tickets] parse_memory)")
        return outcome

    def _alone(self, flight: _InFlight) -> Attempt:
        """The worker died preparing this message: once more, in a fresh one."""
        if not self._send(flight.inbound_id, flight.raw):
            return self._here(flight.raw)
        assert self._in_flight is not None
        return self._await(self._in_flight, again=True)

    def _crashed(self, flight: _InFlight) -> Attempt:
        """A fresh worker died on this message too. If one also dies on an empty message,
        workers cannot run here at all: this process prepares the messages from now on."""
        if not self._answers_empty():
            self._give_up(RuntimeError("the parsing process ends even on an empty message"))
            return self._here(flight.raw)
        log.error("message %d: the parsing process ended while preparing it", flight.inbound_id)
        return False, ParserCrashed(
            "the parsing process ended unexpectedly while preparing this message"
        )

    def _answers_empty(self) -> bool:
        if not self._send(0, b"") or self._in_flight is None or self._worker is None:
            return False
        flight, self._in_flight = self._in_flight, None
        try:
            return self._worker.receive(flight.deadline - time.monotonic()) is not None
        except WorkerGone:
            return False

    def _here(self, raw: bytes) -> Attempt:
        try:
            return True, self._function(raw, self.limits, self.identity)
        except Exception as exc:  # noqa: BLE001 - the caller records it for this message
            return False, exc

    def _read_ahead(self) -> None:
        """Give the idle worker the next planned message, to prepare while this process
        writes the one before it."""
        if self._worker is None or self._in_flight is not None:
            return
        for inbound_id, raw in self._planned:
            if inbound_id not in self._ready:
                self._send(inbound_id, raw)
                return

    def _stop_in_flight(self) -> None:
        self._in_flight = None
        if self._worker is not None:
            self._worker.kill()

    def _give_up(self, exc: BaseException) -> None:
        log.error(
            "cannot run a process for parsing (%s): parsing in this one, without a "
            "time or memory budget",
            exc,
        )
        if self._worker is not None:
            self._worker.kill()
        self._worker = None
        self._in_flight = None


def _unpack(outcome: Attempt) -> Prepared:
    ok, value = outcome
    if ok:
        assert not isinstance(value, BaseException)
        return value
    assert isinstance(value, BaseException)
    raise value
