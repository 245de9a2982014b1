"""A prepare function that fails on purpose, for tests of the parse worker (inbound/prepare.py).

Workers import it by name to run it, so it imports nothing the worker has not loaded already:
a fresh worker can call it at once.
"""

from __future__ import annotations

import dataclasses
import gc
import os

from mailbridge.core.classify import Identity
from mailbridge.core.message import ParsedMessage, ParseLimits, Verdict
from mailbridge.inbound.prepare import prepare

CRASH = b"X-Test-Crash-Parser: yes"  # the process dies
RAISE = b"X-Test-Raise: yes"  # an exception pickle cannot copy
HANG = b"X-Test-Hang: yes"  # never returns
HOARD = b"X-Test-Hoard: yes"  # takes all the memory it can
LEAVE = b"X-Test-Leave: yes"  # leaves 100 MB behind, held by a reference cycle
SCATTER = b"X-Test-Scatter: yes"  # uses 200 MB in small blocks, keeps one in a hundred


class Unpicklable(Exception):
    def __init__(self, code: int, text: str) -> None:  # pickle calls it with one argument
        super().__init__(f"{code}: {text}")


def faulty(raw: bytes, limits: ParseLimits, identity: Identity) -> tuple[ParsedMessage, Verdict]:
    """prepare, except for a message carrying one of the headers above."""
    if CRASH in raw:
        os._exit(3)
    if RAISE in raw:
        raise Unpicklable(7, "cannot parse this")
    while HANG in raw:
        pass
    if HOARD in raw:
        hoard = [bytes(10**8) for _ in range(100)]  # 10 GB, far over any memory budget
        del hoard
    if LEAVE in raw:
        _leave_behind()
    if SCATTER in raw:
        _scatter()
    return prepare(raw, limits, identity)


def _leave_behind() -> None:
    """100 MB in a reference cycle, moved to the collector's oldest generation while still
    in use, as a parsed mail's long-lived parts are: garbage once this returns, which only
    a full collection frees."""
    cycle: list[object] = [bytes(10**8)]
    cycle.append(cycle)
    gc.collect(1)  # the younger generations: it survives into the oldest


_KEPT: list[bytes] = []


def _scatter() -> None:
    """200 MB in blocks of 100 kB (below the allocator's mmap threshold, so in its heap),
    one in a hundred kept for good: the rest is free but stays with the process, between
    blocks in use, unless given back."""
    used = [b"x" * 100_000 for _ in range(2000)]
    _KEPT.extend(used[::100])


def signed(raw: bytes, limits: ParseLimits, identity: Identity) -> tuple[ParsedMessage, Verdict]:
    """faulty, with the id of the process that prepared the message after its subject."""
    parsed, verdict = faulty(raw, limits, identity)
    return dataclasses.replace(parsed, subject=f"{parsed.subject} @{os.getpid()}"), verdict
