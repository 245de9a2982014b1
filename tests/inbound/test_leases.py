"""Mailbox leases in the database, on SQLite and PostgreSQL: taking, renewing, handing
back, expiry, dead owners, the race for one lease, and fencing the store of fetched mail.

Each `Keeper` here has its own App (its own engine), as two instances would. Expiry is
arranged by moving the rows' times into the past, measured on the clock leases use (the
database's on PostgreSQL), so nothing sleeps.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update

from mailbridge.adapters.imap import FetchedMessage
from mailbridge.app import App, build_app
from mailbridge.cli.status import print_status, status_document
from mailbridge.config import MailboxConfig
from mailbridge.db.models import InboundMessage, Instance, MailboxLease, MailboxState
from mailbridge.inbound.fetch import store_raw
from mailbridge.inbound.leases import (
    AlreadyRunning,
    Keeper,
    LeaseLost,
    db_now,
    ownership,
    pid_alive,
)
from tests.support.builders import mail, make_config
from tests.support.sla_world import NOWHERE

pytestmark = pytest.mark.db

TTL = timedelta(seconds=30)


@pytest.fixture
def apps(tmp_path: Path, database_url: str) -> Iterator[list[App]]:
    """Three instances' apps on one database."""
    config = make_config(tmp_path, database_url=database_url, imap=NOWHERE, smtp=NOWHERE)
    made = [build_app(config) for _ in range(3)]
    yield made
    for app in made:
        app.close()


def age(
    app: App, *, lease: str | None = None, instance: str | None = None, by: timedelta = 2 * TTL
) -> None:
    """Move a lease's expiry, or an instance's last heartbeat, `by` into the past."""
    with app.transaction() as session:
        then = db_now(app, session) - by
        if lease is not None:
            session.execute(
                update(MailboxLease).where(MailboxLease.name == lease).values(expires_at=then)
            )
        if instance is not None:
            session.execute(update(Instance).where(Instance.id == instance).values(seen_at=then))


def owner_of(app: App, name: str) -> str | None:
    with app.transaction() as session:
        return session.scalar(select(MailboxLease.owner).where(MailboxLease.name == name))


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_take_renew_and_hand_back(apps: list[App]) -> None:
    first, second = Keeper(apps[0], host="web1"), Keeper(apps[1], host="web2")
    first.start()
    second.start()
    assert first.round(["support"]).held == {"support"}
    assert first.me is not None and owner_of(apps[0], "support") == first.me.id

    seen = second.round(["support"])
    assert seen.held == frozenset() and seen.holders == {"support": first.me.id}
    assert second.take("support") == first.me.id
    assert first.round(["support"]).held == {"support"}, "renewed, still ours"

    first.hand_back("support")
    assert owner_of(apps[0], "support") is None
    assert second.round(["support"]).held == {"support"}, "free: taken at once"
    assert first.round(["support"]).held == frozenset()


def test_a_lease_that_ran_out_or_whose_owner_went_quiet_is_taken_over(apps: list[App]) -> None:
    first, second = Keeper(apps[0], host="web1"), Keeper(apps[1], host="web2")
    first.start()
    second.start()
    assert first.take("support") is None and first.take("sales") is None
    assert second.take("support") is not None

    age(apps[0], lease="support")  # ran out, though its owner still heartbeats
    assert second.take("support") is None
    assert first.me is not None
    age(apps[0], instance=first.me.id)  # went quiet: its unexpired lease is free
    assert second.take("sales") is None
    assert first.round(["support", "sales"]).held == frozenset(), "lost both"


def test_a_previous_incarnation_on_this_host_gives_its_leases_up_at_once(
    apps: list[App],
) -> None:
    crashed = Keeper(apps[0], host="web1", pid=dead_pid())
    crashed.start()
    assert crashed.round(["support"]).held == {"support"}
    restarted = Keeper(apps[1], host="web1")  # our pid; the old one runs no more
    restarted.start()
    assert restarted.round(["support"]).held == {"support"}, "no waiting for the lease time"
    assert crashed.me is not None
    with apps[0].transaction() as session:
        assert session.get(Instance, crashed.me.id) is None, "its row is gone"


def test_a_live_instance_on_another_host_keeps_its_leases(apps: list[App]) -> None:
    remote = Keeper(apps[0], host="web2", pid=dead_pid())  # its pid means nothing here
    remote.start()
    assert remote.round(["support"]).held == {"support"}
    local = Keeper(apps[1], host="web1")
    local.start()
    assert local.round(["support"]).held == frozenset()


def test_retire_hands_everything_back_and_leaves(apps: list[App]) -> None:
    first, second = Keeper(apps[0], host="web1"), Keeper(apps[1], host="web2")
    first.start()
    second.start()
    first.take("support")
    first.take("sales")
    first.retire()
    view = ownership(apps[1])
    assert [i.host for i in view.instances] == ["web2"]
    assert {lease.owner for lease in view.leases.values()} == {None}
    assert second.round(["support", "sales"]).held == {"support", "sales"}


def test_a_removed_registration_comes_back_with_the_next_heartbeat(apps: list[App]) -> None:
    keeper = Keeper(apps[0], host="web1")
    me = keeper.start()
    keeper.round(["support"])
    with apps[0].transaction() as session:
        session.execute(delete(Instance))
    assert keeper.round(["support"]).held == {"support"}, "owner column still says us"
    with apps[0].transaction() as session:
        assert session.get(Instance, me.id) is not None


def test_leases_lapse_one_lease_time_after_the_last_renewal_began(apps: list[App]) -> None:
    clock = [100.0]
    keeper = Keeper(apps[0], host="web1", monotonic=lambda: clock[0])
    keeper.start()
    assert keeper.lapsed(), "nothing renewed yet"
    keeper.round(["support"])
    clock[0] += TTL.total_seconds() - 0.5
    assert not keeper.lapsed()
    clock[0] += 0.5
    assert keeper.lapsed()


def test_two_instances_racing_for_the_same_sources_get_one_owner_each(
    apps: list[App],
) -> None:
    names = [f"box{i}" for i in range(12)]
    keepers = [Keeper(app, host=f"web{n}") for n, app in enumerate(apps)]
    for keeper in keepers:
        keeper.start()
    won: dict[str, list[str]] = {}
    start = threading.Barrier(len(keepers))

    def grab(keeper: Keeper) -> None:
        start.wait()
        assert keeper.me is not None
        won[keeper.me.id] = [name for name in names if keeper.take(name) is None]

    threads = [threading.Thread(target=grab, args=(k,)) for k in keepers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    taken = sorted(name for names_won in won.values() for name in names_won)
    assert taken == sorted(names), "each source won exactly once"
    with apps[0].transaction() as session:
        owners = dict(session.execute(select(MailboxLease.name, MailboxLease.owner)).all())
    assert owners == {name: who for who, got in won.items() for name in got}


def message(uid: int, subject: str) -> FetchedMessage:
    return FetchedMessage(uid, mail(subject=subject), None)


def test_store_refuses_once_another_instance_holds_the_mailbox(apps: list[App]) -> None:
    mailbox: MailboxConfig = apps[0].config.mailbox[0]
    first, second = Keeper(apps[0], host="web1"), Keeper(apps[1], host="web2")
    first.start()
    second.start()
    first.round([mailbox.source_name])
    assert first.tenure is not None
    assert store_raw(apps[0], mailbox, 7, [message(1, "One")], 1, tenure=first.tenure).new == 1

    age(apps[0], lease=mailbox.source_name)
    assert second.take(mailbox.source_name) is None
    with pytest.raises(LeaseLost, match="another instance has taken it over"):
        store_raw(apps[0], mailbox, 7, [message(2, "Two")], 2, tenure=first.tenure)
    with apps[0].transaction() as session:
        subjects = session.scalar(select(func.count(InboundMessage.id)))
        last_uid = session.scalar(select(MailboxState.last_uid))
    assert (subjects, last_uid) == (1, 1), "nothing stored, last_uid unchanged"

    assert second.tenure is not None
    assert store_raw(apps[1], mailbox, 7, [message(2, "Two")], 2, tenure=second.tenure).new == 1
    assert store_raw(apps[0], mailbox, 7, [message(3, "Three")], 3).new == 1, (
        "without a tenure (run --once of old, tests) as before"
    )


def test_storing_renews_the_lease(apps: list[App]) -> None:
    mailbox = apps[0].config.mailbox[0]
    keeper = Keeper(apps[0], host="web1")
    keeper.start()
    keeper.round([mailbox.source_name])
    age(apps[0], lease=mailbox.source_name, by=timedelta(seconds=1))
    assert keeper.tenure is not None
    store_raw(apps[0], mailbox, 7, [message(1, "One")], 1, tenure=keeper.tenure)
    view = ownership(apps[0])
    assert view.leases[mailbox.source_name].expires_at > view.now + TTL - timedelta(seconds=5)


def test_status_lists_the_instances_and_who_polls_each_mailbox(apps: list[App]) -> None:
    polling, quiet = Keeper(apps[0], host="web1"), Keeper(apps[1], host="web2")
    polling.start()
    quiet.start()
    assert polling.take("support") is None and polling.me and quiet.me
    age(apps[1], instance=quiet.me.id, by=5 * TTL)

    document = status_document(apps[2])
    assert {i["id"]: i["running"] for i in document["instances"]} == {
        polling.me.id: True,
        quiet.me.id: False,
    }
    assert [
        i["seen_ago_seconds"] >= 150 for i in document["instances"] if i["id"] == quiet.me.id
    ] == [True]
    assert document["sources"]["support"]["owner"] == polling.me.id
    assert document["attention"] == []
    out = io.StringIO()
    print_status(apps[2], False, out)
    assert "instances: 1 running\n" in out.getvalue()
    assert f"  {quiet.me.id}: last seen 2 min" in out.getvalue()
    assert f"  mailbox support: polled by {polling.me.id}\n" in out.getvalue()

    polling.hand_back("support")
    assert status_document(apps[2])["attention"] == [
        "mailbox support is polled by no running instance: see the instances' logs"
    ]


def test_a_killed_process_not_yet_reaped_counts_as_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_alive(child.pid)
        child.kill()
        deadline = time.monotonic() + 10
        while pid_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)  # the kill lands; the zombie stays until wait() below
        assert not pid_alive(child.pid)
        assert Path(f"/proc/{child.pid}").exists(), "a zombie: not reaped yet"
    finally:
        child.kill()
        child.wait()
    assert pid_alive(os.getpid())


def test_sqlite_refuses_a_second_running_instance_and_postgresql_welcomes_it(
    apps: list[App],
) -> None:
    running = Keeper(apps[0], host="other-host", pid=4242)
    running.start()
    second = Keeper(apps[1], sole_on_sqlite=True)

    if apps[1].engine.dialect.name == "sqlite":
        with pytest.raises(AlreadyRunning, match="stop that one first, or move to PostgreSQL"):
            second.start()
        assert second.tenure is None
        with apps[1].sessions() as session:
            assert session.scalars(select(Instance.id)).all() == [running.me.id]
    else:
        me = second.start()
        with apps[1].sessions() as session:
            assert set(session.scalars(select(Instance.id))) == {running.me.id, me.id}

    gone = running.me.id
    running.retire()
    third = Keeper(apps[2], sole_on_sqlite=True)
    assert third.start().id != gone and third.tenure is not None  # alone again: welcome
