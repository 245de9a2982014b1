"""The process messages are parsed in: one at a time, killed when one overruns its budget,
and never alive after the daemon that started it.

Python cannot stop a thread stuck in C code, so a parse that must be stoppable runs in a
process of its own. Workers are forked by multiprocessing's forkserver, which imports the
parser and loads the language model once (`inbound/worker_preload.py`): a fresh worker
costs a fork, a few milliseconds, so one killed for its budget is replaced before the next
message.

A worker dies with the daemon, however the daemon ends. Its parent is the forkserver, which
exits once no process holds its "alive" pipe; the worker closes its own copy of that pipe,
so the daemon alone keeps the forkserver, and asks the kernel (PR_SET_PDEATHSIG) for SIGKILL
when the forkserver goes. Waiting for work, it also ends on the end of its pipe to the daemon,
or when it finds it has another parent, or, when it was started with an idle limit (the
extra workers of a backlog), once it has waited that long. SIGTERM and Ctrl-C, which reach a
whole process group, are ignored, so a stopping daemon still gets the message in hand; the
daemon ends the worker.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import pickle
import resource
import signal
import sys
import time
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from mailbridge import heap

log = logging.getLogger(__name__)

PRELOAD = ["mailbridge.inbound.worker_preload"]
# multiprocessing runs a main script again in every process it starts (not `python -m`):
# for the `mailbridge` command the forkserver imports what that script imports, once.
COMMAND_PRELOAD = ["mailbridge.cli.main"]
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_PARENT_CHECK = 1.0  # seconds between looks at the parent while waiting for work
_STOP_GRACE = 2.0  # seconds a worker asked to stop has before it is killed
_READY_WITHIN = 60.0  # seconds a new worker may take to be ready for its first message
# A mail at least this large has the memory it took given back to the system after it
# (heap.release): a worker would otherwise keep the peak of its largest mail.
RELEASE_AFTER = 1 << 20

Request = tuple[Callable[..., Any], tuple[Any, ...]]  # a function and its arguments
Answer = tuple[bool, Any]  # (True, result) or (False, the exception raised)


class WorkerGone(Exception):
    """The worker process ended (or could not be reached) before it answered."""


class OverMemory(Exception):
    """The worker ran out of its memory limit; it exits after saying so."""


class ParseWorker:
    """One worker process, seen from the daemon: send a request, wait for its outcome."""

    def __init__(self, memory_limit: int | None = None, idle_exit: float | None = None) -> None:
        self.memory_limit = memory_limit
        self.idle_exit = idle_exit  # seconds a waiting worker lives on; None: as long as we do
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None
        _workers.add(self)

    @property
    def running(self) -> bool:
        return self._process is not None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the process, unless it runs, and wait until it is ready for work (so no
        budget pays for a start). Raises OSError when none can be started."""
        if self._process is not None:
            return
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_preload())  # read when the forkserver starts, once
        ours, theirs = context.Pipe()
        process = context.Process(
            target=serve,
            args=(theirs, self.memory_limit, self.idle_exit),
            name="mailbridge-parse",
            daemon=False,
        )
        try:
            process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._process, self._connection = process, ours
        try:
            ready = self.receive(_READY_WITHIN)
        except WorkerGone as exc:
            raise OSError(f"the parsing process ended as it started: {exc}") from exc
        if ready is None:
            self.kill()
            raise OSError(f"the parsing process was not ready within {_READY_WITHIN:g} s")

    def send(self, request: Request) -> None:
        self.start()
        assert self._connection is not None
        try:
            self._connection.send(request)
        except (OSError, EOFError) as exc:  # the worker is gone: the pipe is closed
            self.kill()
            raise WorkerGone(str(exc)) from exc

    def receive(self, timeout: float) -> Answer | None:
        """The outcome of the request sent last, or None when it is not there in `timeout`
        seconds. Raises WorkerGone when the worker ended without answering."""
        connection = self._connection
        if connection is None:
            raise WorkerGone("no worker is running")
        try:
            if not connection.poll(max(timeout, 0.0)):
                return None
            outcome: Answer = connection.recv()
        except (OSError, EOFError) as exc:
            self.kill()
            raise WorkerGone(str(exc) or "the worker ended") from exc
        return outcome

    def answered(self) -> bool:
        """Whether receive() would return at once: the answer, or the worker's end."""
        connection = self._connection
        if connection is None:
            return True
        try:
            return connection.poll(0)
        except (OSError, EOFError):
            return True

    def kill(self) -> None:
        """End the worker now, whatever it is doing; the next send starts a fresh one."""
        process, connection = self._process, self._connection
        self._process = self._connection = None
        if connection is not None:
            connection.close()
        if process is not None:
            with contextlib.suppress(OSError, ValueError):
                process.kill()
                process.join(_STOP_GRACE)
                process.close()

    def close(self) -> None:
        """Ask an idle worker to stop, and kill it if it does not."""
        if self._connection is not None and self._process is not None:
            with contextlib.suppress(OSError, EOFError, ValueError):
                self._connection.send(None)
                self._process.join(_STOP_GRACE)
        self.kill()


def _preload() -> list[str]:
    main = sys.modules["__main__"]
    script = getattr(main, "__spec__", None) is None and getattr(main, "__file__", None)
    command = bool(script) and os.path.basename(str(script)) == "mailbridge"
    return PRELOAD + COMMAND_PRELOAD if command else PRELOAD


_workers: weakref.WeakSet[ParseWorker] = weakref.WeakSet()


@atexit.register  # before multiprocessing's own exit hook, which would wait for them
def _kill_workers() -> None:
    for worker in list(_workers):
        worker.kill()


# --- in the worker ------------------------------------------------------------------------


def serve(connection: Connection, memory_limit: int | None, idle_exit: float | None = None) -> None:
    """The worker's loop: one request at a time until told to stop, orphaned, or idle for
    `idle_exit` seconds."""
    _die_with_parent()
    _limit_memory(memory_limit)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.disable(logging.CRITICAL)  # outcomes go back to the daemon, which logs them
    parent = os.getppid()
    check = _PARENT_CHECK if idle_exit is None else min(_PARENT_CHECK, idle_exit)
    try:
        connection.send((True, None))  # ready
    except (OSError, EOFError):
        return
    while True:
        idle_until = None if idle_exit is None else time.monotonic() + idle_exit
        try:
            while not connection.poll(check):
                if os.getppid() != parent:
                    return  # orphaned, and PR_SET_PDEATHSIG did not come (not Linux)
                if idle_until is not None and time.monotonic() >= idle_until:
                    return  # no backlog any more: the daemon starts a fresh one if needed
            request = connection.recv()
        except (OSError, EOFError):
            return  # the daemon is gone
        if request is None:
            return
        outcome = _run(request)
        try:
            connection.send(outcome)
        except (OSError, EOFError):
            return
        if not outcome[0] and isinstance(outcome[1], OverMemory):
            return  # a fresh worker starts with a clean heap
        large = _size(request) >= RELEASE_AFTER
        del request, outcome
        # A parsed mail leaves reference cycles that hold its bytes until the collector's
        # oldest generation runs, which a few large mails never trigger: 30 MB scans took
        # a worker from 216 to 476 MB in five mails, then past its limit. The heap it
        # inherited is frozen, so this walks only what the mail left: 0.04 ms.
        gc.collect()
        if large:
            heap.release()


def _size(request: Request) -> int:
    """Bytes of mail a request carried."""
    return sum(len(a) for a in request[1] if isinstance(a, bytes))


def _run(request: Request) -> Answer:
    function, arguments = request
    try:
        return True, function(*arguments)
    except MemoryError:
        return False, OverMemory("the message needed more memory than the worker may use")
    except Exception as exc:  # noqa: BLE001 - the daemon records it for this message
        return False, _portable(exc)


def _portable(exc: Exception) -> BaseException:
    """exc itself if it survives the trip between processes, else a stand-in saying what
    it was (an exception class whose constructor takes other arguments does not)."""
    try:
        copy = pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any failure to copy means: send a stand-in
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return copy if isinstance(copy, BaseException) else RuntimeError(str(exc))


def _die_with_parent() -> None:
    """SIGKILL when the parent (the forkserver) ends, and let it end with the daemon."""
    forkserver = multiprocessing.forkserver._forkserver  # private: see the module doc
    alive = getattr(forkserver, "_forkserver_alive_fd", None)
    if isinstance(alive, int):
        with contextlib.suppress(OSError):
            os.close(alive)
        setattr(forkserver, "_forkserver_alive_fd", None)  # noqa: B010
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the pipe checks remain
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _limit_memory(limit: int | None) -> None:
    """Address space for this process: what it holds now (the parser's libraries and the
    language model, shared with the forkserver) plus `limit` bytes for the message."""
    if limit is None:
        return
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[0])
        base = pages * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (base + limit, base + limit))
