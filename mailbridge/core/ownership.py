"""Who polls which watched folder when several instances share one database: the decisions.

Each running instance holds a lease on some of the watched folders ("sources"), renewed by
a heartbeat. Every round an instance reads the leases and the instances, and `plan` says
which free sources to try to take and which one of its own to hand back, so that sources
spread evenly (a fair share is ceil(sources / live instances)) without moving back and
forth, and none stays unpolled for long: a source nobody has held for more than a lease
time is taken by whoever sees it, fair share or not (availability before balance).

Everything here is a plain value in, a plain value out; the time is passed in, and whether
a process runs is asked through the `pid_alive` function the caller gives.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from math import ceil

__all__ = [
    "InstanceInfo",
    "LeaseInfo",
    "Plan",
    "Reconciliation",
    "RoundFacts",
    "dead_on_this_host",
    "elsewhere",
    "free_since",
    "holder",
    "instance_id",
    "live_instances",
    "plan",
    "reconcile",
]


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    id: str  # "host:pid:token"
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    name: str  # the source name of a watched folder
    owner: str | None  # an instance id; None once handed back
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class RoundFacts:
    """What one lease round decides from: the watched sources, the leases and instances as
    read at `now`, this instance, and the lease time."""

    sources: Sequence[str]
    leases: Mapping[str, LeaseInfo]
    instances: Sequence[InstanceInfo]
    me: InstanceInfo
    now: datetime
    ttl: timedelta


@dataclass(frozen=True, slots=True)
class Plan:
    take: tuple[str, ...]  # unheld for more than a lease time: take each, share or not
    candidates: tuple[str, ...]  # other free sources, in the order to try them
    want: int  # how many of the candidates to get: what brings us up to the fair share
    hand_back: str | None  # one of ours to give up this round, to spread the load
    dead: frozenset[str]  # instances of this host known to be gone: their leases are free
    share: int
    holders: Mapping[str, str | None]  # each source -> the live instance holding it


@dataclass(frozen=True, slots=True)
class Reconciliation:
    start: tuple[str, ...]  # held and configured, not polled yet: start polling
    stop: tuple[str, ...]  # polled here, but the lease is gone: stop at once
    release: tuple[str, ...]  # held, but no longer configured: stop polling, hand back


def instance_id(host: str, pid: int, token: str) -> str:
    """ "host:pid:token", within the 100 characters the column holds."""
    return f"{host[:80]}:{pid}:{token}"


def dead_on_this_host(
    instances: Sequence[InstanceInfo], me: InstanceInfo, pid_alive: Callable[[int], bool]
) -> frozenset[str]:
    """Instances of this host whose process is gone (or whose pid is mine: an earlier
    incarnation of this process), so that a restarted instance takes its mailboxes back
    at once instead of after the lease time.

    Only rows that have shown no sign of life since this instance started count: an
    instance in another PID namespace under the same host name (containers) keeps
    heartbeating, and its pid, which only looks free from here, must not condemn it.
    """
    return frozenset(
        other.id
        for other in instances
        if other.id != me.id
        and other.host == me.host
        and other.seen_at <= me.started_at
        and (other.pid == me.pid or not pid_alive(other.pid))
    )


def live_instances(
    instances: Sequence[InstanceInfo],
    me: InstanceInfo,
    now: datetime,
    ttl: timedelta,
    dead: Collection[str] = (),
) -> frozenset[str]:
    """Instances seen within one lease time, and never those known dead; always me."""
    return frozenset(
        {i.id for i in instances if i.seen_at > now - ttl and i.id not in dead} | {me.id}
    )


def holder(lease: LeaseInfo | None, live: Collection[str], now: datetime) -> str | None:
    """Who holds the source now: the owner, while its lease runs and it is alive."""
    if lease is None or lease.owner is None or lease.owner not in live:
        return None
    return lease.owner if lease.expires_at > now else None


def free_since(
    lease: LeaseInfo | None, instances: Mapping[str, InstanceInfo], ttl: timedelta, me: InstanceInfo
) -> datetime:
    """Since when a source nobody holds has been without a holder (as far as one can tell:
    a source never leased counts from this instance's start)."""
    if lease is None:
        return me.started_at
    owner = instances.get(lease.owner) if lease.owner is not None else None
    if owner is None:
        return lease.expires_at
    return min(lease.expires_at, owner.seen_at + ttl)


def plan(
    facts: RoundFacts,
    pid_alive: Callable[[int], bool],
    *,
    may_hand_back: bool = True,
    keep: Collection[str] = (),
) -> Plan:
    """What this instance should try this round. `keep`: sources not to hand back (just
    taken back after nobody else took them); `may_hand_back` False pauses spreading."""
    sources, leases, instances = facts.sources, facts.leases, facts.instances
    me, now, ttl = facts.me, facts.now, facts.ttl
    dead = dead_on_this_host(instances, me, pid_alive)
    live = live_instances(instances, me, now, ttl, dead)
    by_id = {i.id: i for i in instances if i.id not in dead}
    holders = {name: holder(leases.get(name), live, now) for name in sources}
    mine = [name for name in sources if holders[name] == me.id]
    free = [name for name in sources if holders[name] is None]
    share = ceil(len(sources) / len(live)) if sources else 0
    take = tuple(name for name in free if free_since(leases.get(name), by_id, ttl, me) <= now - ttl)
    # Each instance tries the free sources in its own order, so instances starting together
    # mostly ask for different ones instead of all racing for the first.
    candidates = tuple(
        sorted(
            (name for name in free if name not in take), key=lambda name: _spread_key(me.id, name)
        )
    )
    want = max(share - len(mine) - len(take), 0)
    hand_back = None
    # Only while every source is held: then someone below the share takes what we give up;
    # with free sources around, those go first and the shares settle by themselves.
    if may_hand_back and len(mine) > share and not free:
        spare = [name for name in mine if name not in keep]
        if spare:
            hand_back = max(spare, key=lambda name: _spread_key(me.id, name))
    return Plan(take, candidates, want, hand_back, dead, share, holders)


def reconcile(
    held: Collection[str],
    polling: Collection[str],
    leaving: Collection[str],
    configured: Sequence[str],
) -> Reconciliation:
    """Pollers to start and stop so that this instance polls exactly what it holds."""
    wanted = set(configured)
    return Reconciliation(
        start=tuple(
            name
            for name in configured
            if name in held and name not in polling and name not in leaving
        ),
        stop=tuple(sorted(name for name in polling if name not in held)),
        release=tuple(sorted(name for name in held if name not in wanted and name not in leaving)),
    )


def elsewhere(owner: str | None, unheld: bool, ttl: timedelta) -> tuple[str, bool, str]:
    """Health (state, ok, detail) of a source this instance does not poll."""
    if owner is not None:
        return "elsewhere", True, f"polled by instance {owner}"
    if unheld:
        return (
            "unowned",
            False,
            (f"no instance has polled it for longer than {ttl}, and taking it over failed"),
        )
    return "unowned", True, "no instance polls it right now; one takes it over shortly"


def _spread_key(instance: str, source: str) -> int:
    return zlib.crc32(f"{instance}\0{source}".encode())
