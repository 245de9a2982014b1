"""Crash points for the fault tests: a kill -9 at an exact step, which timing cannot give.

Set MAILBRIDGE_CRASH_AT to a point's name and the process dies there, as if killed, without
cleanup. Unset (always, in production) it costs one dictionary lookup.
"""

from __future__ import annotations

import os

CRASH_ENV = "MAILBRIDGE_CRASH_AT"
CRASH_EXIT = 137  # what a shell reports for a process killed by SIGKILL


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os._exit(CRASH_EXIT)
