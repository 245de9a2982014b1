"""Mailbox leases in the database: which running instance polls which watched folder.

Every `mailbridge run` registers a row in `instance` and heartbeats it; it polls a folder
only while it holds that folder's row in `mailbox_lease` (owner = its id, expires_at in the
future), renewed with the heartbeat every third of `service.takeover_after`. A lease whose
time ran out, or whose owner stopped heartbeating, may be taken by another instance in one
statement (INSERT … ON CONFLICT DO UPDATE … WHERE), so two instances never both get it.
Storing what was fetched renews the lease in the same transaction and fails with LeaseLost
when another instance owns the folder now: an instance that lost a mailbox can neither
store from it nor tidy the server copy.

Times: on PostgreSQL "now" is the database's clock, so hosts whose clocks disagree still
agree on expiry; on SQLite (one host) it is `app.clock`.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import inf
from typing import Any, cast

from sqlalchemy import DateTime, Table, case, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailbridge.app import App
from mailbridge.core.ownership import (
    InstanceInfo,
    LeaseInfo,
    RoundFacts,
    dead_on_this_host,
    instance_id,
    plan,
)
from mailbridge.db.models import Instance, MailboxLease
from mailbridge.errors import MailbridgeError

__all__ = [
    "AlreadyRunning",
    "Keeper",
    "LeaseLost",
    "Ownership",
    "Round",
    "Tenure",
    "hold",
    "ownership",
    "pid_alive",
]

log = logging.getLogger(__name__)

FORGET_AFTER = timedelta(hours=1)  # an instance row not seen for this long is removed
HANDBACK_COOLDOWN = 10  # lease times without handing back, once nobody took one we gave up

_LEASES = cast(Table, MailboxLease.__table__)
_INSTANCES = cast(Table, Instance.__table__)


class LeaseLost(MailbridgeError):
    """Another instance holds the mailbox now: stop polling it, store nothing from it."""


class AlreadyRunning(MailbridgeError):
    """A second instance on a database that serves only one (SQLite)."""


@dataclass(frozen=True, slots=True)
class Tenure:
    """What fetching needs to store only while this instance holds the folder's lease."""

    owner: str  # this instance's id
    ttl: timedelta


@dataclass(frozen=True, slots=True)
class Round:
    """The outcome of one heartbeat: what this instance holds now, and who holds the rest."""

    held: frozenset[str]  # every lease it owns, configured sources or not
    holders: Mapping[str, str | None]  # each configured source -> its live holder
    unheld: frozenset[str]  # held by nobody for more than a lease time, even after trying
    hand_back: str | None


@dataclass(frozen=True, slots=True)
class Ownership:
    """Instances and leases as `mailbridge status` shows them."""

    now: datetime
    ttl: timedelta
    instances: list[InstanceInfo]
    leases: dict[str, LeaseInfo]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host; a zombie (killed, not yet reaped
    by its parent) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: it exists
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rpartition(b")")[2].split()[:1]
    except OSError:  # no /proc here, or it ended meanwhile
        return True
    return state not in ([b"Z"], [b"X"])


def db_now(app: App, session: Session) -> datetime:
    """The time leases are measured in: the database's clock on PostgreSQL, app.clock on
    SQLite (one host, and tests move it)."""
    if session.get_bind().dialect.name == "postgresql":
        now: datetime = session.execute(
            select(func.clock_timestamp(type_=DateTime(timezone=True)))
        ).scalar_one()
        return now.astimezone(UTC)
    return app.clock.now()


def hold(app: App, session: Session, tenure: Tenure, name: str) -> None:
    """Renew this instance's lease on `name` inside the caller's transaction, or raise
    LeaseLost (and so roll the transaction back) when another instance owns it now."""
    renewed = session.execute(
        update(_LEASES)
        .where(_LEASES.c.name == name, _LEASES.c.owner == tenure.owner)
        .values(expires_at=db_now(app, session) + tenure.ttl)
    )
    if not getattr(renewed, "rowcount", 0):
        raise LeaseLost(
            f"mailbox {name}: another instance has taken it over; this one stops "
            "polling it and stored nothing (the messages stay on the server)"
        )


def ownership(app: App) -> Ownership:
    with app.transaction() as session:
        now = db_now(app, session)
        return Ownership(now, app.config.service.takeover_after, *_read(session))


def _read(session: Session) -> tuple[list[InstanceInfo], dict[str, LeaseInfo]]:
    instances = [
        InstanceInfo(i.id, i.host, i.pid, i.started_at, i.seen_at)
        for i in session.scalars(select(Instance).order_by(Instance.id))
    ]
    leases = {
        lease.name: LeaseInfo(lease.name, lease.owner, lease.expires_at)
        for lease in session.scalars(select(MailboxLease))
    }
    return instances, leases


class Keeper:
    """One running instance's side of mailbox ownership: its instance row, the leases it
    holds, and until when it may go on polling without a renewal. Its methods do database
    work and are called from a worker thread, one at a time."""

    def __init__(
        self,
        app: App,
        *,
        host: str | None = None,
        pid: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sole_on_sqlite: bool = False,
    ) -> None:
        self.app = app
        self.sole_on_sqlite = sole_on_sqlite  # refuse to start beside a running instance
        self.host = (host or socket.gethostname())[:255]
        self.pid = pid or os.getpid()
        self.me: InstanceInfo | None = None
        self._monotonic = monotonic
        self._valid_until = -inf  # monotonic time: our leases may have run out after it
        self._handed_back: dict[str, float] = {}  # source -> monotonic time we gave it up
        self._spread_paused_until = -inf

    @property
    def ttl(self) -> timedelta:
        return self.app.config.service.takeover_after

    @property
    def interval(self) -> float:
        """Seconds between heartbeats: three chances to renew before a lease runs out."""
        return self.ttl.total_seconds() / 3

    @property
    def tenure(self) -> Tenure | None:
        """What fetching needs to store under our leases; None before start()."""
        return Tenure(self.me.id, self.ttl) if self.me is not None else None

    def start(self) -> InstanceInfo:
        """Register this instance, and forget instances of this host that are gone."""
        with self.app.transaction() as session:
            now = db_now(self.app, session)
            ident = instance_id(self.host, self.pid, secrets.token_hex(4))
            self.me = InstanceInfo(ident, self.host, self.pid, now, now)
            session.add(
                Instance(id=ident, host=self.host, pid=self.pid, started_at=now, seen_at=now)
            )
        with self.app.transaction() as session:
            instances, _ = _read(session)
            dead = dead_on_this_host(instances, self.me, pid_alive)
            now = db_now(self.app, session)
            self._forget(session, dead, now)
            sqlite = session.get_bind().dialect.name == "sqlite"
        running = [
            i.id
            for i in instances
            if i.id not in dead and i.id != ident and i.seen_at > now - self.ttl
        ]
        if sqlite and running and self.sole_on_sqlite:
            self._refuse(running[0])
        log.debug("instance %s registered", ident)
        return self.me

    def _refuse(self, other: str) -> None:
        """SQLite serves one running instance (its outbox has a single sender): refuse to
        be a second one rather than send acknowledgements twice."""
        self.retire()
        raise AlreadyRunning(
            f"another mailbridge instance ({other}) is running on this SQLite database; "
            "SQLite serves one instance at a time: stop that one first, or move to "
            "PostgreSQL to run several"
        )

    def lapsed(self) -> bool:
        """True once our leases may have run out for want of a renewal: stop polling."""
        return self._monotonic() >= self._valid_until

    def round(self, sources: Sequence[str], barred: Collection[str] = ()) -> Round:
        """Heartbeat, renew what we hold, then take what the plan says; one round.

        `barred` sources are watched but not taken here (this instance cannot sign in to
        them): another instance may, and the round still tells who holds them."""
        me = self.me or self.start()
        began, ttl = self._monotonic(), self.ttl
        cooldown = HANDBACK_COOLDOWN * ttl.total_seconds()
        recent = {name for name, at in self._handed_back.items() if began - at < cooldown}
        with self.app.transaction() as session:
            now = db_now(self.app, session)
            self._heartbeat(session, me, now)
            renewed = session.scalars(
                update(_LEASES)
                .where(_LEASES.c.owner == me.id)
                .values(expires_at=now + ttl)
                .returning(_LEASES.c.name)
            ).all()
            instances, leases = _read(session)
            decided = plan(
                RoundFacts(sources, leases, instances, me, now, ttl),
                pid_alive,
                may_hand_back=began >= self._spread_paused_until,
                keep=recent,
            )
            self._forget(session, decided.dead, now)
        self._valid_until = began + ttl.total_seconds()
        got = [name for name in decided.take if name not in barred and self._acquire(name)]
        if recent & set(got):
            # What we gave up came back unwanted: someone counted as live takes no mailboxes
            # (a `run --once`, another configuration). Keep what we hold for a while.
            self._spread_paused_until = began + cooldown
        wanted = decided.want
        for name in decided.candidates:
            if wanted <= 0:
                break
            if name not in barred and self._acquire(name):
                got.append(name)
                wanted -= 1
        for name in got:
            log.info("mailbox %s: taken over by this instance (%s)", name, me.id)
        holders = {**decided.holders, **dict.fromkeys(got, me.id)}
        return Round(
            frozenset(renewed) | frozenset(got),
            holders,
            frozenset(decided.take) - frozenset(got),
            decided.hand_back,
        )

    def take(self, name: str) -> str | None:
        """Acquire `name` now; None when it is ours, else the instance that holds it."""
        if self._acquire(name):
            return None
        with self.app.transaction() as session:
            owner = session.scalar(select(_LEASES.c.owner).where(_LEASES.c.name == name))
        return owner or "another instance"

    def hand_back(self, *names: str) -> None:
        """Give up leases (their pollers have stopped) for another instance to take."""
        assert self.me is not None
        with self.app.transaction() as session:
            session.execute(
                update(_LEASES)
                .where(_LEASES.c.name.in_(names), _LEASES.c.owner == self.me.id)
                .values(owner=None, expires_at=db_now(self.app, session))
            )
        for name in names:
            self._handed_back[name] = self._monotonic()

    def retire(self) -> None:
        """Clean shutdown: hand back every lease and remove our row, so that another
        instance takes over at once."""
        if self.me is None:
            return
        with self.app.transaction() as session:
            session.execute(
                update(_LEASES)
                .where(_LEASES.c.owner == self.me.id)
                .values(owner=None, expires_at=db_now(self.app, session))
            )
            session.execute(delete(_INSTANCES).where(_INSTANCES.c.id == self.me.id))
        self.me, self._valid_until = None, -inf

    def _heartbeat(self, session: Session, me: InstanceInfo, now: datetime) -> None:
        seen = session.execute(
            update(_INSTANCES).where(_INSTANCES.c.id == me.id).values(seen_at=now)
        )
        if not getattr(seen, "rowcount", 0):
            # Removed while we could not heartbeat (taken for dead, or forgotten): return.
            log.warning("instance %s: its registration was gone; registering again", me.id)
            session.add(
                Instance(id=me.id, host=me.host, pid=me.pid, started_at=me.started_at, seen_at=now)
            )

    def _forget(self, session: Session, dead: frozenset[str], now: datetime) -> None:
        assert self.me is not None
        if dead:
            gone = session.scalars(
                delete(_INSTANCES)
                .where(_INSTANCES.c.id.in_(dead), _INSTANCES.c.seen_at <= self.me.started_at)
                .returning(_INSTANCES.c.id)
            ).all()
            for ident in gone:
                log.info("instance %s is no longer running: its mailboxes are free", ident)
        session.execute(delete(_INSTANCES).where(_INSTANCES.c.seen_at < now - FORGET_AFTER))

    def _acquire(self, name: str) -> bool:
        """One statement: insert the lease, or take it over when it is ours already, free,
        run out, or held by an instance that stopped heartbeating."""
        assert self.me is not None
        me, ttl = self.me.id, self.ttl
        with self.app.transaction() as session:
            now = db_now(self.app, session)
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            statement: Any = insert(_LEASES).values(
                name=name, owner=me, acquired_at=now, expires_at=now + ttl
            )
            alive = select(_INSTANCES.c.id).where(_INSTANCES.c.seen_at > now - ttl)
            statement = statement.on_conflict_do_update(
                index_elements=[_LEASES.c.name],
                set_={
                    "owner": me,
                    "expires_at": statement.excluded.expires_at,
                    "acquired_at": case(
                        (_LEASES.c.owner == me, _LEASES.c.acquired_at),
                        else_=statement.excluded.acquired_at,
                    ),
                },
                where=or_(
                    _LEASES.c.owner.is_(None),
                    _LEASES.c.owner == me,
                    _LEASES.c.expires_at <= now,
                    _LEASES.c.owner.not_in(alive),
                ),
            ).returning(_LEASES.c.owner)
            taken: bool = session.scalar(statement) == me
        return taken
