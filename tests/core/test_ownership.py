"""Who polls which mailbox: fair shares, spreading without flapping, orphans, dead owners."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbridge.config import load_config
from mailbridge.core.ownership import (
    InstanceInfo,
    LeaseInfo,
    RoundFacts,
    dead_on_this_host,
    elsewhere,
    plan,
    reconcile,
)
from tests.support.config_files import EXAMPLE, MINIMAL, SECRETS, problem, write

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)
ROUND = TTL / 3
SOURCES = ["a", "b", "c", "d", "e", "f"]


def instance(
    name: str,
    *,
    host: str = "web1",
    pid: int = 100,
    started: datetime = T0,
    seen: datetime | None = None,
) -> InstanceInfo:
    return InstanceInfo(f"{host}:{pid}:{name}", host, pid, started, seen or started)


def everyone_alive(_pid: int) -> bool:
    return True


def lease(name: str, owner: InstanceInfo | None, expires: datetime) -> LeaseInfo:
    return LeaseInfo(name, owner.id if owner else None, expires)


class Fleet:
    """Instances taking turns at lease rounds against one lease table, as the database
    would settle them: an acquisition succeeds only when nobody live holds the lease."""

    def __init__(self, *members: InstanceInfo, sources: list[str] = SOURCES) -> None:
        self.members = list(members)
        self.sources = sources
        self.leases: dict[str, LeaseInfo] = {}
        self.now = T0
        self.handed_back: list[tuple[str, str]] = []

    def held(self, member: InstanceInfo) -> list[str]:
        return sorted(
            n
            for n, lease in self.leases.items()
            if lease.owner == member.id and lease.expires_at > self.now
        )

    def turn(self, me: InstanceInfo) -> None:
        me = self._heartbeat(me)
        for name, held in list(self.leases.items()):
            if held.owner == me.id:
                self.leases[name] = LeaseInfo(name, me.id, self.now + TTL)
        facts = RoundFacts(self.sources, self.leases, self.members, me, self.now, TTL)
        decided = plan(facts, everyone_alive)
        wanted = decided.want
        for name in decided.take:
            self._acquire(me, name)
        for name in decided.candidates:
            if wanted and self._acquire(me, name):
                wanted -= 1
        if decided.hand_back:
            self.leases[decided.hand_back] = LeaseInfo(decided.hand_back, None, self.now)
            self.handed_back.append((me.id, decided.hand_back))

    def rounds(self, count: int) -> None:
        for _ in range(count):
            for member in list(self.members):
                self.turn(member)
            self.now += ROUND

    def _heartbeat(self, me: InstanceInfo) -> InstanceInfo:
        fresh = InstanceInfo(me.id, me.host, me.pid, me.started_at, self.now)
        self.members = [fresh if m.id == me.id else m for m in self.members]
        return fresh

    def _acquire(self, me: InstanceInfo, name: str) -> bool:
        current = self.leases.get(name)
        live = {m.id for m in self.members if m.seen_at > self.now - TTL}
        if (
            current
            and current.owner in live
            and current.owner != me.id
            and current.expires_at > self.now
        ):
            return False
        self.leases[name] = LeaseInfo(name, me.id, self.now + TTL)
        return True


def test_a_lone_instance_takes_every_source_at_once() -> None:
    me = instance("me")
    decided = plan(RoundFacts(SOURCES, {}, [me], me, T0, TTL), everyone_alive)
    assert decided.share == 6 and decided.want == 6
    assert sorted(decided.candidates) == SOURCES and decided.hand_back is None


def test_the_fair_share_counts_live_instances_only() -> None:
    me, peer = instance("me"), instance("peer", host="web2")
    gone = instance("gone", host="web3", seen=T0 - 2 * TTL)
    decided = plan(RoundFacts(SOURCES, {}, [me, peer, gone], me, T0, TTL), everyone_alive)
    assert decided.share == 3 and decided.want == 3


def test_three_instances_spread_evenly_and_then_stay_put() -> None:
    first = instance("one", host="web1")
    fleet = Fleet(first)
    fleet.rounds(1)
    assert fleet.held(first) == SOURCES  # alone at first: everything
    second, third = instance("two", host="web2"), instance("three", host="web3")
    fleet.members += [second, third]
    fleet.rounds(6)
    assert [len(fleet.held(m)) for m in fleet.members] == [2, 2, 2]
    assert sorted(n for m in fleet.members for n in fleet.held(m)) == SOURCES
    assert [who for who, _ in fleet.handed_back] == [first.id] * 4, "one per round, by the one over"
    settled = dict(fleet.leases)
    fleet.rounds(20)
    assert {n: lease.owner for n, lease in fleet.leases.items()} == {
        n: lease.owner for n, lease in settled.items()
    }, "no flapping once spread"


def test_a_dead_owners_sources_go_to_the_survivors() -> None:
    a, b, c = (instance(x, host=x) for x in ("a", "b", "c"))
    fleet = Fleet(a, b, c)
    fleet.rounds(6)
    orphaned = fleet.held(c)
    survivors = [a, b]  # c is killed: no more turns, no more heartbeats; its row stays
    for _ in range(6):
        for member in survivors:
            fleet.turn(member)
        fleet.now += ROUND
    assert sorted(n for m in survivors for n in fleet.held(m)) == SOURCES
    assert sorted(len(fleet.held(m)) for m in survivors) == [3, 3]
    assert set(orphaned) <= set(fleet.held(a)) | set(fleet.held(b))


def test_a_source_unheld_for_a_lease_time_is_taken_beyond_the_share() -> None:
    me, peer = instance("me"), instance("peer", host="web2")
    now = T0 + timedelta(minutes=5)
    me, peer = (InstanceInfo(i.id, i.host, i.pid, i.started_at, now) for i in (me, peer))
    leases = {
        "a": lease("a", me, now + TTL),
        "b": lease("b", peer, now + TTL),
        "c": lease("c", None, now - TTL - timedelta(seconds=1)),
    }
    decided = plan(RoundFacts(["a", "b", "c"], leases, [me, peer], me, now, TTL), everyone_alive)
    assert decided.share == 2 and decided.take == ("c",)
    recent = {**leases, "c": lease("c", None, now - timedelta(seconds=5))}
    decided = plan(RoundFacts(["a", "b", "c"], recent, [me, peer], me, now, TTL), everyone_alive)
    assert decided.take == () and decided.candidates == ("c",) and decided.want == 1


def test_over_the_share_hands_back_one_per_round_and_only_when_all_are_held() -> None:
    me, b, c = instance("me"), instance("b", host="web2"), instance("c", host="web3")
    held = {n: lease(n, me, T0 + TTL) for n in SOURCES}
    facts = RoundFacts(SOURCES, held, [me, b, c], me, T0, TTL)
    decided = plan(facts, everyone_alive)
    assert decided.share == 2 and decided.hand_back in SOURCES and decided.want == 0
    with_free = replace(facts, leases={**held, "f": lease("f", None, T0)})
    assert plan(with_free, everyone_alive).hand_back is None
    kept = plan(facts, everyone_alive, keep=SOURCES)
    assert kept.hand_back is None
    paused = plan(facts, everyone_alive, may_hand_back=False)
    assert paused.hand_back is None


def test_a_previous_incarnation_on_this_host_is_dead_at_once() -> None:
    old = instance("old", pid=100, started=T0, seen=T0 + timedelta(seconds=20))
    crashed = instance("crashed", pid=200, started=T0, seen=T0 + timedelta(seconds=20))
    sibling = instance("sibling", pid=300, seen=T0 + timedelta(seconds=20))
    remote = instance("remote", host="web2", pid=400, seen=T0 + timedelta(seconds=20))
    me = instance("new", pid=100, started=T0 + timedelta(seconds=25))
    alive = {300, 400}.__contains__
    dead = dead_on_this_host([old, crashed, sibling, remote, me], me, alive)
    assert dead == {old.id, crashed.id}, "same pid with another token, or pid gone"

    now = T0 + timedelta(seconds=25)
    leases = {n: lease(n, old if n in "abc" else remote, now + TTL) for n in SOURCES}
    decided = plan(RoundFacts(SOURCES, leases, [old, remote, me], me, now, TTL), alive)
    assert decided.dead == {old.id}
    assert sorted(decided.candidates) == ["a", "b", "c"] and decided.want == 3
    assert decided.holders["d"] == remote.id and decided.holders["a"] is None


def test_an_instance_heartbeating_since_i_started_is_never_taken_for_dead() -> None:
    """Another PID namespace under the same host name: its pid only looks free from here."""
    me = instance("me", pid=1, started=T0)
    twin = instance("twin", pid=1, started=T0 - TTL, seen=T0 + timedelta(seconds=5))
    other = instance("other", pid=77, started=T0 - TTL, seen=T0 + timedelta(seconds=5))
    assert dead_on_this_host([me, twin, other], me, lambda _pid: False) == frozenset()


def test_reconcile_polls_exactly_what_is_held() -> None:
    changes = reconcile(
        held={"a", "b", "old"}, polling={"b", "c"}, leaving={"x"}, configured=["a", "b", "c", "x"]
    )
    assert changes.start == ("a",)
    assert changes.stop == ("c",)
    assert changes.release == ("old",)
    assert reconcile({"x"}, set(), {"x"}, ["x"]).start == (), "not while handing it back"


def test_health_of_sources_polled_elsewhere() -> None:
    assert elsewhere("web2:1:ab", False, TTL) == ("elsewhere", True, "polled by instance web2:1:ab")
    assert elsewhere(None, False, TTL)[:2] == ("unowned", True)
    state, ok, detail = elsewhere(None, True, TTL)
    assert (state, ok) == ("unowned", False) and "0:00:30" in detail


def test_takeover_after_defaults_to_30s_and_refuses_less_than_3s(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL), SECRETS).service.takeover_after == TTL
    shorter = MINIMAL + '\n[service]\ntakeover_after = "2s"\n'
    assert "service.takeover_after: expected a duration of at least 3s" in problem(
        tmp_path, shorter
    )
    example = load_config(EXAMPLE, SECRETS)
    assert example.service.takeover_after == TTL, "documented in the example"
