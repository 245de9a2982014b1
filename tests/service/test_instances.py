"""Several instances on one database: each mailbox polled by exactly one of them, spread
across them, and taken over when its instance stops or is killed.

Three mailboxes are three folders of the embedded pymap server's one user. The first test
runs three daemons in this process (each its own App and engine, as three processes
would have); the second runs real `mailbridge run` processes and kills one with SIGKILL.
`takeover_after` is 3 s, so a lease round runs every second.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select, update

from mailbridge.app import App, build_app
from mailbridge.db import migrate
from mailbridge.db.models import InboundMessage, Instance, MailboxLease, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.inbound.leases import Keeper, db_now
from mailbridge.service.daemon import Daemon
from tests.support.builders import (
    IMAP_PASSWORD_ENV,
    drive_daemon,
    mail,
    make_config,
    write_config_file,
)

pytestmark = pytest.mark.integration

TAKEOVER = 3.0  # seconds
FOLDERS = {"support": "INBOX", "sales": "Sales", "billing": "Billing"}


def mailboxes(imap: EmbeddedImapServer) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "address": f"{name}@shop.example",
            "host": imap.host,
            "port": imap.port,
            "security": "none",
            "username": imap.username,
            "password_env": IMAP_PASSWORD_ENV,
            "folder": folder,
            "after": "move",
            "poll_interval": "1s",
        }
        for name, folder in FOLDERS.items()
    ]


def make_folders(imap: EmbeddedImapServer) -> None:
    for folder in FOLDERS.values():
        imap.append_many([], folder)


async def until(condition: Callable[[], bool], what: str, timeout: float = 20) -> float:
    """Seconds it took for `condition` to hold."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - began


def polled_by(daemons: list[Daemon]) -> dict[str, list[int]]:
    """Which daemons (by index) poll each mailbox right now."""
    return {
        name: [
            n
            for n, d in enumerate(daemons)
            if (state := d.health.get(f"mailbox:{name}")) is not None
            and state.state in ("connected", "fetching", "idle", "polling")
        ]
        for name in FOLDERS
    }


def spread(daemons: list[Daemon]) -> bool:
    owners = polled_by(daemons)
    return all(len(who) == 1 for who in owners.values()) and sorted(
        who[0] for who in owners.values()
    ) == list(range(len(daemons)))


def ticket_subjects(app: App) -> list[str]:
    with app.sessions() as session:
        return sorted(session.scalars(select(Ticket.subject)))


@pytest.mark.postgres
def test_three_daemons_spread_the_mailboxes_and_take_over_from_one_that_stops(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    postgres_url: str,
) -> None:
    make_folders(imap_server)
    config = make_config(
        tmp_path,
        database_url=postgres_url,
        imap=imap_server,
        smtp=smtp_sink,
        mailbox=mailboxes(imap_server),
        service={"takeover_after": "3s", "outbox_interval": "1s"},
    )
    apps = [build_app(config) for _ in range(3)]

    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(24))
        daemons = [Daemon(app, keeper=Keeper(app, host=f"web{n}")) for n, app in enumerate(apps)]
        running = [asyncio.create_task(d.run_forever()) for d in daemons]
        try:
            await until(lambda: all(d.ready.is_set() for d in daemons), "readiness")
            await until(
                lambda: (
                    spread(daemons)
                    and all(
                        sorted(
                            s.state
                            for n, s in d.health.snapshot().items()
                            if n.startswith("mailbox:")
                        )
                        == ["elsewhere", "elsewhere", "idle"]
                        for d in daemons
                    )
                ),
                "one mailbox each, the others shown as elsewhere",
            )
            assert all(d.health.healthy for d in daemons)
            for name, folder in FOLDERS.items():
                await asyncio.to_thread(
                    imap_server.append, mail(f"C <{name}@c.example>", f"To {name}"), folder
                )
            await asyncio.to_thread(smtp_sink.wait_for, 3, 20)

            gone = polled_by(daemons)["sales"][0]
            daemons[gone].stop()
            await asyncio.wait_for(running[gone], 30)
            survivors = [d for n, d in enumerate(daemons) if n != gone]
            took = await until(lambda: len(polled_by(survivors)["sales"]) == 1, "a takeover")
            assert took < TAKEOVER, "a clean stop hands the lease back at once"
            await asyncio.to_thread(
                imap_server.append, mail("D <d@c.example>", "After the stop"), "Sales"
            )
            await asyncio.to_thread(smtp_sink.wait_for, 4, 20)
            assert all(len(who) == 1 for who in polled_by(survivors).values())
        finally:
            for daemon in daemons:
                daemon.stop()
            await asyncio.wait_for(asyncio.gather(*running), 30)

    try:
        asyncio.run(main())
        assert ticket_subjects(apps[0]) == [
            "After the stop",
            "To billing",
            "To sales",
            "To support",
        ]
        assert len(smtp_sink.received) == 4, "one acknowledgement each"
        with apps[0].sessions() as session:
            assert session.scalar(select(func.count()).select_from(Instance)) == 0
            assert set(session.scalars(select(MailboxLease.owner))) == {None}
    finally:
        for app in apps:
            app.close()


def test_a_reload_polls_added_mailboxes_and_hands_back_removed_ones(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    database_url: str,
) -> None:
    make_folders(imap_server)
    boxes = mailboxes(imap_server)
    first = make_config(
        tmp_path,
        database_url=database_url,
        imap=imap_server,
        smtp=smtp_sink,
        mailbox=boxes[:2],
        service={"takeover_after": "3s"},
    )
    later = make_config(
        tmp_path,
        database_url=database_url,
        imap=imap_server,
        smtp=smtp_sink,
        mailbox=boxes[1:],
        service={"takeover_after": "3s"},
    )
    app = build_app(first)

    def polled(daemon: Daemon) -> list[str]:
        return sorted(
            name.removeprefix("mailbox:")
            for name, state in daemon.health.snapshot().items()
            if name.startswith("mailbox:") and state.state == "idle"
        )

    async def scenario(daemon: Daemon) -> None:
        await until(lambda: polled(daemon) == ["sales", "support"], "the first two")
        await daemon.reconfigure(later, app.templates)
        await until(lambda: polled(daemon) == ["billing", "sales"], "the new set")
        await until(lambda: owners(app.engine)["support"] is None, "support handed back")
        assert daemon.health.get("mailbox:support") is None
        assert daemon.alive() is None
        await asyncio.to_thread(imap_server.append, mail("B <b@c.example>", "Bill"), "Billing")
        await asyncio.to_thread(smtp_sink.wait_for, 1, 20)

    try:
        drive_daemon(app, scenario)
    finally:
        app.close()


def test_a_poller_that_lost_its_lease_stores_nothing_and_stops(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another instance takes the mailbox between two lease rounds (30 s takeover: the next
    round is 10 s away): the mail that arrives is not stored here, and stays on the server."""
    config = make_config(
        tmp_path,
        database_url=database_url,
        imap=imap_server,
        smtp=smtp_sink,
        service={"takeover_after": "30s"},
    )
    app, thief_app = build_app(config), build_app(config)
    thief = Keeper(thief_app, host="elsewhere")

    async def scenario(daemon: Daemon) -> None:
        await until(
            lambda: getattr(daemon.health.get("mailbox:support"), "state", "") == "idle",
            "the mailbox to be polled",
        )
        await asyncio.to_thread(thief.start)
        with app.transaction() as session:  # its lease ran out, as if renewals failed
            session.execute(
                update(MailboxLease).values(expires_at=db_now(app, session) - timedelta(seconds=1))
            )
        assert await asyncio.to_thread(thief.take, "support") is None
        await asyncio.to_thread(imap_server.append, mail("G <g@c.example>", "Stolen"))
        await until(
            lambda: getattr(daemon.health.get("mailbox:support"), "state", "") == "elsewhere",
            "the poller to stop",
            timeout=5,
        )
        assert daemon.alive() is None

    try:
        with caplog.at_level(logging.WARNING, logger="mailbridge"):
            drive_daemon(app, scenario)
        assert (
            "mailbox support: another instance has taken it over; this one stops polling "
            "it and stored nothing" in caplog.text
        )
        with app.sessions() as session:
            assert session.scalar(select(func.count()).select_from(InboundMessage)) == 0
        assert len(imap_server.messages("INBOX")) == 1, "left on the server for its owner"
        assert owners(app.engine)["support"] == getattr(thief.me, "id", None)
    finally:
        app.close()
        thief_app.close()


# --- real processes, one killed -------------------------------------------------------------

SECRET = "imap-Secret-4-instances"


@pytest.fixture
def imap() -> Iterator[EmbeddedImapServer]:
    with EmbeddedImapServer(password=SECRET) as server:
        yield server


def write_config(
    tmp_path: Path,
    imap: EmbeddedImapServer,
    smtp: SmtpSink,
    db_url: str,
    *,
    takeover: str = f"{int(TAKEOVER)}s",
) -> Path:
    others = "".join(
        f"""
[[mailbox]]
name = "{name}"
address = "{name}@shop.example"
host = "{imap.host}"
port = {imap.port}
security = "none"
username = "{imap.username}"
password_env = "MB_INSTANCES_IMAP_PASSWORD"
folder = "{folder}"
poll_interval = "1s"
"""
        for name, folder in FOLDERS.items()
        if name != "support"
    )
    path = write_config_file(
        tmp_path,
        imap,
        smtp,
        db_url,
        password_env="MB_INSTANCES_IMAP_PASSWORD",
        extra_mailbox=others,
    )
    path.write_text(path.read_text() + f'takeover_after = "{takeover}"\n')
    return path


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MB_INSTANCES_IMAP_PASSWORD": SECRET}
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(name, None)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mailbridge", "--config", str(config), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def wait(condition: Callable[[], Any], what: str, timeout: float = 30) -> float:
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - began


def owners(database: Engine) -> dict[str, str | None]:
    """Each mailbox's owner, when that owner is registered."""
    with database.connect() as connection:
        live = set(connection.scalars(select(Instance.id)))
        return {
            name: owner if owner in live else None
            for name, owner in connection.execute(select(MailboxLease.name, MailboxLease.owner))
        }


@pytest.mark.postgres
def test_killing_the_owner_of_a_mailbox_hands_it_to_another_process(
    tmp_path: Path,
    imap: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    postgres_url: str,
) -> None:
    make_folders(imap)
    config = write_config(tmp_path, imap, smtp_sink, postgres_url)
    database = create_engine(postgres_url)
    migrate.upgrade(database)  # once, before three processes start on it
    processes = [start(config, tmp_path / f"instance{n}.log") for n in range(3)]
    try:
        wait(
            lambda: len({*owners(database).values()} - {None}) == 3,
            "the three mailboxes spread over the three processes",
        )
        owner = owners(database)["support"]
        assert owner is not None
        victim = next(p for p in processes if f":{p.pid}:" in owner)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)

        took = wait(lambda: owners(database)["support"] not in (None, owner), "a takeover")
        assert took < TAKEOVER + TAKEOVER / 3 + 2, f"took {took:.1f} s"
        imap.append(mail("E <e@c.example>", "After the kill"))
        smtp_sink.wait_for(1, 30)
        wait(lambda: imap.messages("INBOX") == [], "the mail moved away")
        assert len({*owners(database).values()} - {None, owner}) == 2, "the others hold all three"
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(30)
    with database.connect() as connection:
        assert list(connection.scalars(select(Ticket.subject))) == ["After the kill"]
    database.dispose()
    assert [m.recipients for m in smtp_sink.received] == [("e@c.example",)]
    assert not any(b"Traceback" in (tmp_path / f"instance{n}.log").read_bytes() for n in range(3))


def test_a_lone_instance_killed_and_restarted_takes_its_mailboxes_back_at_once(
    tmp_path: Path,
    imap: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    database_url: str,
) -> None:
    """The dead process's leases run 30 s more; its successor on the same host sees that
    the process is gone and does not wait for them."""
    make_folders(imap)
    config = write_config(tmp_path, imap, smtp_sink, database_url, takeover="30s")
    database = create_engine(database_url)
    migrate.upgrade(database)
    first = start(config, tmp_path / "first.log")
    try:
        wait(
            lambda: len({*owners(database).values()} - {None}) == 1 and len(owners(database)) == 3,
            "the lone instance to hold every mailbox",
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        second = start(config, tmp_path / "second.log")
        try:
            took = wait(
                lambda: all(o and f":{second.pid}:" in o for o in owners(database).values()),
                "the restarted instance to hold every mailbox",
            )
            assert took < 15, f"took {took:.1f} s: it waited for the dead one's leases"
            imap.append(mail("F <f@c.example>", "After the restart"), "Billing")
            smtp_sink.wait_for(1, 30)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
    with database.connect() as connection:
        assert list(connection.scalars(select(Ticket.subject))) == ["After the restart"]
        assert list(connection.scalars(select(Instance.id))) == [], (
            "the dead one's row removed by its successor, the successor's own at its stop"
        )
    database.dispose()
    assert len(smtp_sink.received) == 1
