"""The collector and a long-lived heap.

What a process makes as it starts (modules, the configuration, templates, the ORM's
mappings: about 150,000 objects in the daemon) lives as long as the process. A full
collection walks all of it every time, about 70 ms in the daemon, landing in whatever runs
then (a sweep, a batch). `settle()` collects once and moves what is left out of the
collector's reach, so later collections walk only what came after. In a process that forks
(the parse workers' forkserver), it also keeps a child's collections from writing to the
pages it shares with its parent, so they stay shared.

A frozen object is never collected: one that becomes garbage in a reference cycle (an old
template set after a reload) would stay. So `settle()` thaws first, and is called again
after a reload (docs/architecture.md, "Who runs the loops").
"""

from __future__ import annotations

import gc

__all__ = ["settle"]


def settle() -> None:
    """Collect everything, then freeze what is left (see the module doc)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
