"""Parse and classify stored messages, in a second process while this one writes tickets.

parse_message and classify are pure: bytes and configuration in, plain data out. In a long
pass (a backlog, a burst) a second process prepares the next messages while this one does
their database work, so the two halves use two cores. It starts only for a pass with
PARALLEL_FROM messages or more waiting (starting it and loading its language model takes
most of a second) and for messages that failed before, and it ends with the pass. A pass of
a few messages, the daemon's usual case, parses here as before.

Whichever process prepares a message, the caller gets what preparing it here would give:
the result, or the exception parse or classify raised. When the other process dies, the
message the caller asks for next is prepared again alone in a fresh one: if that dies too,
this message alone gets ParserCrashed (and is retried, then quarantined, like any failure);
otherwise it gets its result and the search goes on, one message per task.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType

from mailbridge.core.classify import Identity, classify
from mailbridge.core.language import load_model
from mailbridge.core.message import ParsedMessage, ParseLimits, Verdict
from mailbridge.core.parse import parse_message

log = logging.getLogger(__name__)

PARALLEL_FROM = 300  # messages waiting; fewer are parsed in this process
CHUNK = 25  # messages per task: a task costs this process about 0.3 ms, whatever its size

Prepared = tuple[ParsedMessage, Verdict]
PrepareFunction = Callable[[bytes, ParseLimits, Identity], Prepared]
_Outcome = tuple[bool, "Prepared | BaseException"]  # (True, result) or (False, what it raised)


class ParserCrashed(Exception):
    """The process preparing this message ended while working on it."""


def prepare(raw: bytes, limits: ParseLimits, identity: Identity) -> Prepared:
    parsed = parse_message(raw, limits)
    return parsed, classify(parsed, identity)


def prepare_many(raws: Sequence[bytes], limits: ParseLimits, identity: Identity,
                 function: PrepareFunction = prepare) -> list[_Outcome]:
    """Runs in the other process: one outcome per message, so one failure spoils nothing."""
    outcomes: list[_Outcome] = []
    for raw in raws:
        try:
            outcomes.append((True, function(raw, limits, identity)))
        except Exception as exc:  # noqa: BLE001 - the caller records it for this message
            outcomes.append((False, _portable(exc)))
    return outcomes


def _start_worker() -> None:
    """In the second process, before its first task. Ctrl-C and a service stop reach the
    whole process group, but this process ends when its parent closes it, after the
    message in hand. The language model is loaded at once, before the heap holds any
    message."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    load_model()


def _portable(exc: Exception) -> BaseException:
    """exc itself if it survives the trip between processes, else a stand-in saying what
    it was (an exception class whose constructor takes other arguments does not)."""
    try:
        copy = pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any failure to copy means: send a stand-in
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return copy if isinstance(copy, BaseException) else RuntimeError(str(exc))


class Preparer:
    """Prepares the messages of a pass, here or in a second process; see the module doc.

    `plan` names the messages about to be processed (and, read ahead, the next ones);
    `result` returns a message's outcome, in whatever order the caller asks.
    """

    def __init__(self, limits: ParseLimits, identity: Identity, *,
                 parallel_from: int = PARALLEL_FROM, function: PrepareFunction = prepare,
                 chunk: int = CHUNK) -> None:
        self.limits, self.identity = limits, identity
        self.parallel_from, self.chunk = parallel_from, chunk
        self._function = function
        self._pool: ProcessPoolExecutor | None = None
        self._unavailable = False  # a second process cannot run here: parse in this one
        self._jobs: dict[int, tuple[Future[list[_Outcome]], int]] = {}
        self._raws: dict[int, bytes] = {}  # of the jobs, to prepare them again after a crash
        self._careful = False  # after a crash: one message per task, so a crash names one

    @property
    def parallel(self) -> bool:
        return self._pool is not None

    def start_parallel(self) -> None:
        if self._pool is not None or self._unavailable:
            return
        try:
            # spawn: a fresh interpreter that imports only the core; fork would copy this
            # process's threads' locks and database connections.
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_worker)
        except OSError as exc:  # no semaphores (/dev/shm), no processes left, ...
            self._give_up(exc)
        else:
            log.info("parsing in a second process")

    def plan(self, messages: Sequence[tuple[int, bytes]]) -> None:
        """Start preparing these messages in the other process, when it runs; jobs for
        messages not named again are dropped."""
        if self._pool is None:
            return
        wanted = {inbound_id for inbound_id, _ in messages}
        stale = {self._jobs.pop(i)[0] for i in list(self._jobs) if i not in wanted}
        for inbound_id in self._raws.keys() - wanted:
            del self._raws[inbound_id]
        for future in stale - {future for future, _ in self._jobs.values()}:
            future.cancel()  # not yet started: no work wasted on it
        self._submit([(i, raw) for i, raw in messages if i not in self._jobs])

    def result(self, inbound_id: int, raw: bytes) -> Prepared:
        """The message's parse and verdict; raises what preparing it raised."""
        if self._pool is not None and inbound_id not in self._jobs:
            self._submit([(inbound_id, raw)])
        job = self._jobs.pop(inbound_id, None)
        self._raws.pop(inbound_id, None)
        if job is None:  # parsing here
            return self._function(raw, self.limits, self.identity)
        future, index = job
        try:
            outcome = future.result()[index]
        except BrokenProcessPool:
            outcome = self._alone(inbound_id, raw)
        return _unpack(outcome)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._jobs.clear()
        self._raws.clear()

    def __enter__(self) -> Preparer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _submit(self, messages: Sequence[tuple[int, bytes]]) -> None:
        size = 1 if self._careful else self.chunk
        for start in range(0, len(messages), size):
            part = messages[start:start + size]
            future = self._send([raw for _, raw in part])
            if future is None:
                return  # given up: result() parses them here
            for index, (inbound_id, raw) in enumerate(part):
                self._jobs[inbound_id] = (future, index)
                self._raws[inbound_id] = raw

    def _send(self, raws: list[bytes]) -> Future[list[_Outcome]] | None:
        """The task, or None when no second process can be started."""
        if self._pool is None:
            return None
        try:
            return self._pool.submit(prepare_many, raws, self.limits, self.identity,
                                     self._function)
        except BrokenProcessPool:  # it died while idle: a new one, with what it held
            waiting = [(i, self._raws[i]) for i in self._jobs]
            self._restart()
            self._submit(waiting)
            return self._send(raws)
        except OSError as exc:  # starting the process failed
            self._give_up(exc)
            return None

    def _alone(self, inbound_id: int, raw: bytes) -> _Outcome:
        """The other process died with this message in its queue: prepare it alone in a
        fresh one. If that dies too (and one given nothing to do does not), this message
        is the cause. Either way the rest go on, one per task from now, so that another
        crash names its message at once."""
        waiting = [(i, self._raws[i]) for i in self._jobs]
        self._restart()
        self._careful = True
        try:
            outcome = _outcome_of(self._send([raw]))
        except BrokenProcessPool:
            self._restart()
            if not _runs(self._send([])):
                self._give_up(RuntimeError("the second process ends even with nothing to do"))
                outcome = None
            else:
                log.error("message %d: the parsing process ended while preparing it",
                          inbound_id)
                outcome = (False, ParserCrashed(
                    "the parsing process ended unexpectedly while preparing this message"))
        if outcome is None:  # no second process any more: here, as before
            try:
                outcome = (True, self._function(raw, self.limits, self.identity))
            except Exception as exc:  # noqa: BLE001 - the caller records it for this message
                outcome = (False, exc)
        self._submit(waiting)
        return outcome

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._jobs.clear()
        self._raws.clear()
        self.start_parallel()

    def _give_up(self, exc: BaseException) -> None:
        log.warning("cannot run a second process for parsing (%s); parsing in this one", exc)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._unavailable = True
        self._jobs.clear()
        self._raws.clear()


def _outcome_of(future: Future[list[_Outcome]] | None) -> _Outcome | None:
    return None if future is None else future.result()[0]


def _runs(future: Future[list[_Outcome]] | None) -> bool:
    if future is None:
        return False
    try:
        future.result()
    except BrokenProcessPool:
        return False
    return True


def _unpack(outcome: _Outcome) -> Prepared:
    ok, value = outcome
    if ok:
        assert not isinstance(value, BaseException)
        return value
    assert isinstance(value, BaseException)
    raise value
