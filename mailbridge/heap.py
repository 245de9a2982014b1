"""The collector and a long-lived heap.

What a process makes as it starts (modules, the configuration, templates, the ORM's
mappings: about 150,000 objects in the daemon) lives as long as the process. A full
collection walks all of it every time, about 70 ms in the daemon, landing in whatever runs
then (a sweep, a batch). `settle()` collects once and moves what is left out of the
collector's reach, so later collections walk only what came after. In a process that forks
(the parse workers' forkserver), it also keeps a child's collections from writing to the
pages it shares with its parent, so they stay shared.

A command is the same in small: it loads modules, its configuration and the app, works a
moment and exits. The collector, counting only allocations, walked that growing heap while
it loaded (0.1 s), and the interpreter's last collection at exit walked it once more
(0.2 s). `loading()` pauses the collector while a command loads and then freezes what it
loaded, without the full collection of `settle()`: `mailbridge tickets list` took 1.06 s of
CPU before, 0.63 s after (median of 15 runs each, alternating).

A frozen object is never collected: one that becomes garbage in a reference cycle (an old
template set after a reload) would stay. So `settle()` thaws first, and is called again
after a reload (docs/architecture.md, "Who runs the loops").
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

__all__ = ["loading", "release", "settle"]


@contextmanager
def loading() -> Iterator[None]:
    """No collection while the block runs, and what the process holds afterwards frozen (see
    the module doc). For what a process loads to keep: garbage made before the block stays
    until the next `settle()`."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def settle() -> None:
    """Collect everything, then freeze what is left (see the module doc)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def release() -> None:
    """Give the memory the C allocator holds free back to the system (glibc's
    `malloc_trim`): freed memory otherwise stays with the process, at the peak of the
    largest mail it handled. About 0.1 ms; nothing where the C library has no such call."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim
