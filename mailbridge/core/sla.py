"""Deadline arithmetic: pure functions of a start time, a target and a calendar."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar


class PolicyLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def mailboxes(self) -> tuple[str, ...]: ...
    @property
    def priorities(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Deadlines:
    first_response: datetime
    resolution: datetime


P = TypeVar("P", bound=PolicyLike)


def select_policy(policies: Sequence[P], mailbox: str, priority: str) -> P:
    """The first policy whose match keys all hold; one without keys matches everything."""
    for policy in policies:
        if policy.mailboxes and mailbox not in policy.mailboxes:
            continue
        if policy.priorities and priority not in policy.priorities:
            continue
        return policy
    raise LookupError(f"no SLA policy matches mailbox {mailbox!r}, priority {priority!r}")


def wall_clock_deadlines(start: datetime, first: timedelta, resolution: timedelta) -> Deadlines:
    return Deadlines(start + first, start + resolution)


def overdue_by(due: datetime, now: datetime) -> timedelta:
    """How long past `due` it is at `now` (zero when not yet due), to the whole minute."""
    late = max(now - due, timedelta(0))
    return timedelta(minutes=int(late.total_seconds() // 60))
