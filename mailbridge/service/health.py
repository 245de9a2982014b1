"""What each part of the running daemon is doing, and whether it is well.

Components are named "database", "smtp" (kept by the sender), "mailbox:<name>",
"scheduler", and "retention" while a purge fails; /healthz answers 200 only when every one
is ok, and names those that are not. A mailbox is connecting, connected, fetching, idle or
polling while this instance polls it; failing (its server), signed-out (its OAuth2 sign-in
needs `mailbridge oauth login`; smtp too), paused (the database, or a lease that could not
be renewed); elsewhere (another instance polls it: ok) or unowned (handed back, not yet
taken: ok).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailbridge.clock import Clock

__all__ = ["ComponentState", "Health"]


@dataclass(frozen=True, slots=True)
class ComponentState:
    ok: bool
    state: str  # a word: idle, polling, fetching, connecting, failing, running, ...
    detail: str | None
    since: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "state": self.state,
            "detail": self.detail,
            "since": self.since.isoformat(timespec="seconds"),
        }


class Health:
    """Component states, set from the event loop by the parts that know them."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._states: dict[str, ComponentState] = {}

    def set(
        self, component: str, state: str, *, ok: bool = True, detail: str | None = None
    ) -> None:
        """Record a state; `since` moves only when the state or its health changes."""
        current = self._states.get(component)
        since = self._clock.now()
        if current is not None and (current.state, current.ok) == (state, ok):
            since = current.since
        self._states[component] = ComponentState(ok, state, detail, since)

    def failing(self, component: str, detail: str, state: str = "failing") -> None:
        self.set(component, state, ok=False, detail=detail)

    def remove(self, component: str) -> None:
        self._states.pop(component, None)

    def get(self, component: str) -> ComponentState | None:
        return self._states.get(component)

    def snapshot(self) -> dict[str, ComponentState]:
        return dict(sorted(self._states.items()))

    @property
    def healthy(self) -> bool:
        return all(state.ok for state in self._states.values())

    def problems(self) -> dict[str, str]:
        return {
            name: f"{s.state}: {s.detail}" if s.detail else s.state
            for name, s in self.snapshot().items()
            if not s.ok
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.healthy else "unhealthy",
            "failing": self.problems(),
            "components": {name: s.as_json() for name, s in self.snapshot().items()},
        }

    def mailbox_summary(self) -> str:
        """ "3 mailboxes idle" or "2 mailboxes idle, 1 failing"."""
        counts: dict[str, int] = {}
        for name, state in self.snapshot().items():
            if name.startswith("mailbox:"):
                counts[state.state] = counts.get(state.state, 0) + 1
        if not counts:
            return "no mailboxes"
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        (word, count), rest = ordered[0], ordered[1:]
        noun = "mailbox" if count == 1 else "mailboxes"
        return ", ".join([f"{count} {noun} {word}", *(f"{n} {w}" for w, n in rest)])
