"""Several instances on one PostgreSQL: kill -9 the one that owns the mailbox and time how
long until another owns it and a mail arriving after the kill is acknowledged."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, inspect, text

from mailbridge.config import ServiceConfig
from tests.faults.daemons import DaemonProcess
from tests.faults.report import Phase
from tests.faults.traffic import Injected

if TYPE_CHECKING:
    from tests.faults.harness import World

SOURCE = "support"  # the mailbox's source name, the lease's key


def leases_supported() -> bool:
    """Whether this mailbridge has mailbox leases (service.takeover_after)."""
    return "takeover_after" in ServiceConfig.model_fields


def table_exists(database_url: str, name: str) -> bool:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return bool(inspect(connection).has_table(name))
    finally:
        engine.dispose()


def lease_owner(world: World) -> str | None:
    """The instance id ("host:pid:token") holding the mailbox's lease, if any."""
    with world.ledger.engine.connect() as connection:
        owner = connection.execute(
            text("SELECT owner FROM mailbox_lease WHERE name = :name"), {"name": SOURCE}
        ).scalar()
    return None if owner is None else str(owner)


def owning_daemon(world: World, owner: str | None) -> DaemonProcess | None:
    """Which of our live processes an instance id names (by its pid)."""
    if owner is None:
        return None
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    pid = int(parts[1])
    return next((d for d in world.live if d.pid == pid), None)


def _wait_owner(world: World, timeout: float) -> DaemonProcess | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = owning_daemon(world, lease_owner(world))
        if found is not None:
            return found
        time.sleep(0.1)
    return None


def owner_takeover(world: World) -> Phase:
    plan = world.plan
    phase = Phase(f"{plan.instances} instances, owner killed", time.monotonic())
    if not leases_supported() or not table_exists(world.database_url, "mailbox_lease"):
        phase.notes.append("! this mailbridge has no mailbox leases: no takeover to measure")
        return phase
    while len(world.live) < plan.instances:
        world.new_daemon().start()
    for daemon in world.live:
        if not daemon.wait_answering(60):
            phase.notes.append(f"! {daemon.name} did not start")
    owner = _wait_owner(world, 60)
    if owner is None:
        phase.notes.append("! no live instance took the mailbox's lease")
        return phase
    world.ledger.wait_for_all(plan.recovery_timeout)  # settled with every instance running
    killed_at = time.monotonic()
    world.kill(owner, phase)
    tracked = world.ledger.recovery(phase.label)
    phase.recoveries.append(tracked)
    phase.takeover = _time_takeover(world, owner, killed_at)
    if phase.takeover is None:
        phase.notes.append(f"! no other instance took over within {plan.recovery_timeout:g} s")
    else:
        phase.notes.append(
            f"{owner.name} owned the mailbox; takeover = another instance "
            "owns it and a mail sent after the kill is acknowledged"
            + (
                "; instances on separate host names"
                if world.separate_hosts
                else "; all instances on one host"
            )
        )
    world.ledger.wait([tracked], plan.recovery_timeout)
    world.say(f"  {phase.label}: {phase.recovery_text()} s")
    return phase


def _time_takeover(world: World, killed: DaemonProcess, killed_at: float) -> float | None:
    owned_at = acked_at = None
    deadline = killed_at + world.plan.recovery_timeout
    while time.monotonic() < deadline:
        now = time.monotonic()
        if owned_at is None:
            try:
                successor = owning_daemon(world, lease_owner(world))
            except Exception:  # noqa: BLE001 - the database may be busy; look again
                successor = None
            if successor is not None and successor is not killed:
                owned_at = now
        if acked_at is None:
            probe = _first_new_after(world.injector.injected, killed_at)
            if probe is not None and world.ledger.is_done(probe):
                acked_at = now
        if owned_at is not None and acked_at is not None:
            return max(owned_at, acked_at) - killed_at
        time.sleep(0.1)
    return None


def _first_new_after(injected: list[Injected], moment: float) -> Injected | None:
    return next((m for m in injected if m.written_at > moment and m.is_new), None)
