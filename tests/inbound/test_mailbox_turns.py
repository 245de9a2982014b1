"""Two instances on one PostgreSQL database, each processing its own mailbox: they hold
their mailboxes' turns at once, and mail of one customer through both mailboxes still
threads onto one ticket, in arrival order (db/turn.py, inbound/conversation.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.core.classify import classify
from mailbridge.core.parse import message_fingerprint, parse_message
from mailbridge.db import turn
from mailbridge.db.models import InboundMessage, Outbox, Ticket
from mailbridge.inbound import conversation
from mailbridge.inbound.process import ProcessReport, process_pending
from tests.support.builders import IMAP_PASSWORD_ENV, mail, make_config, stored
from tests.support.sla_world import NOWHERE, START

pytestmark = [pytest.mark.db, pytest.mark.postgres, pytest.mark.timeout(120)]

MAILBOXES = ("support", "sales")


def mailbox(name: str) -> dict[str, object]:
    return {
        "name": name,
        "address": f"{name}@shop.example",
        "host": NOWHERE.host,
        "port": NOWHERE.port,
        "security": "none",
        "username": NOWHERE.username,
        "password_env": IMAP_PASSWORD_ENV,
        "after": "move",
    }


@pytest.fixture
def apps(tmp_path: Path, postgres_url: str) -> Iterator[list[App]]:
    """Two instances of one configuration with both mailboxes, on one database."""
    config = make_config(
        tmp_path,
        database_url=postgres_url,
        imap=NOWHERE,
        smtp=NOWHERE,
        mailbox=[mailbox(name) for name in MAILBOXES],
    )
    made = [build_app(config, clock=FrozenClock(START)) for _ in range(2)]
    yield made
    for app in made:
        app.close()


def store(app: App, mails: list[tuple[str, str, bytes]]) -> list[int]:
    """(mailbox, Message-ID, raw) stored as fetch stores them, in this order; their ids."""
    with app.transaction() as session:
        rows = []
        for uid, (box, _, raw) in enumerate(mails, start=1):
            row = stored(raw, uid=uid, at=START, mailbox=box)
            row.message_id = message_fingerprint(raw)[0]  # as fetch stores it
            rows.append(row)
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def first_and_reply(n: int) -> list[tuple[str, str, bytes]]:
    """Customer n writes to support, then answers her own mail through sales."""
    sender = f"C{n} <c{n}@customer{n}.example>"
    first = f"<c{n}.0@customer{n}.example>"
    second = f"<c{n}.1@customer{n}.example>"
    return [
        ("support", first, mail(sender, f"Order {n}", message_id=first)),
        (
            "sales",
            second,
            mail(sender, f"Re: Order {n}", "And sales?", message_id=second, in_reply_to=first),
        ),
    ]


def run_at_once(apps: list[App]) -> list[ProcessReport]:
    reports: list[ProcessReport] = []
    barrier = threading.Barrier(len(apps))

    def processor(app: App) -> None:
        barrier.wait()
        reports.append(process_pending(app))

    threads = [threading.Thread(target=processor, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    return reports


def wait_until(seen: Callable[[], bool]) -> None:
    """Polls the database's lock table: the state is observed, not guessed from timing."""
    deadline = time.monotonic() + 30
    while not seen():
        assert time.monotonic() < deadline, "the locks never reached the expected state"
        time.sleep(0.01)


def lock_rows(app: App, classid: int) -> list[tuple[int, int, bool]]:
    """(objid, pid, granted) of this database's advisory locks of one class (two-integer
    keys); other databases' are their own."""
    query = text(
        "SELECT objid::bigint, pid, granted FROM pg_locks "
        "WHERE locktype = 'advisory' AND objsubid = 2 AND classid::bigint = :classid "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    with app.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query, {"classid": classid})]


def test_one_customer_through_two_mailboxes_and_two_instances_is_one_ticket_each(
    apps: list[App],
) -> None:
    mails = [m for n in range(6) for m in first_and_reply(n)]
    twin = mail("Twin <twin@both.example>", "To you both", message_id="<twin@both.example>")
    mails += [(box, "<twin@both.example>", twin) for box in MAILBOXES]  # one mail, Cc both
    ids = store(apps[0], mails)

    reports = run_at_once(apps)

    with apps[0].sessions() as session:
        inbound = {row.id: row for row in session.scalars(select(InboundMessage))}
        tickets = session.scalars(select(Ticket)).all()
    assert sum(report.processed for report in reports) == len(mails), "each message once"
    assert {row.state for row in inbound.values()} == {"processed"}
    assert {row.attempts for row in inbound.values()} == {1}, "attempts counted once"
    for first, second in zip(ids[:12:2], ids[1:12:2], strict=True):
        assert inbound[first].ticket_id == inbound[second].ticket_id is not None
    assert inbound[ids[12]].ticket_id == inbound[ids[13]].ticket_id, "a second delivery"
    assert len(tickets) == 7 and len({t.number for t in tickets}) == 7


def test_a_reply_through_another_mailbox_waits_for_its_parent_still_in_turn(
    apps: list[App],
) -> None:
    """The parent's mailbox is in another instance's turn, the parent not yet processed:
    the reply is put back, uncounted, until it is; then it joins the parent's ticket."""
    ids = store(apps[0], first_and_reply(1))
    holder = apps[1].engine.connect()
    other = holder.begin()
    holder.execute(
        text("SELECT pg_advisory_xact_lock(:c, :k)"),
        {"c": turn.MAILBOX_CLASS, "k": turn.key_of("mailbox", "support")},
    )
    reports: list[ProcessReport] = []
    worker = threading.Thread(target=lambda: reports.append(process_pending(apps[0])))
    worker.start()
    try:
        # It tried sales, put the reply back, and now queues for support.
        wait_until(
            lambda: any(not granted for _, _, granted in lock_rows(apps[0], turn.MAILBOX_CLASS))
        )
        with apps[0].sessions() as session:
            reply = session.get_one(InboundMessage, ids[1])
            assert (reply.state, reply.attempts) == ("new", 0), "put back, its attempt uncounted"
    finally:
        other.rollback()
        holder.close()
        worker.join(60)
    with apps[0].sessions() as session:
        rows = [session.get_one(InboundMessage, inbound_id) for inbound_id in ids]
    assert reports and reports[0].processed == 2 and reports[0].created == 1
    assert rows[0].ticket_id == rows[1].ticket_id is not None
    assert [row.attempts for row in rows] == [1, 1]


def test_a_reply_whose_parent_nobody_here_processes_stalls_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    """This instance owns sales and billing; the parent waits in support, which it does
    not process. A reply in sales waits for it (no longer than PARENT_WAIT); billing's mail
    goes on meanwhile, in the same pass."""
    config = make_config(
        tmp_path,
        database_url=postgres_url,
        imap=NOWHERE,
        smtp=NOWHERE,
        mailbox=[mailbox("sales"), mailbox("billing")],
    )
    clock = FrozenClock(START)
    app = build_app(config, clock=clock)
    try:
        other = mail("Bea <bea@b.example>", "Invoice", message_id="<bea@b.example>")
        parent, reply, invoice = store(
            app, [*first_and_reply(1), ("billing", "<bea@b.example>", other)]
        )
        first = process_pending(app)
        with app.sessions() as session:
            states = {i: session.get_one(InboundMessage, i) for i in (parent, reply, invoice)}
            assert states[invoice].state == "processed", "billing did not wait"
            assert (states[reply].state, states[reply].attempts) == ("new", 0)
            assert states[parent].state == "new"  # support: another instance's
        assert first.processed == 1

        clock.advance(conversation.PARENT_WAIT + timedelta(seconds=1))
        assert process_pending(app).processed == 1  # waited long enough: on its own
        with app.sessions() as session:
            assert session.get_one(InboundMessage, reply).state == "processed"
    finally:
        app.close()


def test_two_instances_hold_their_own_mailboxes_turns_at_once(apps: list[App]) -> None:
    """Both batches are held at a conversation key this test holds: each instance then
    holds its own mailbox's lock at the same moment, which pg_locks shows."""
    store(
        apps[0],
        [
            (
                "support",
                "<a@one.example>",
                mail("A <a@one.example>", "One", message_id="<a@one.example>"),
            ),
            (
                "sales",
                "<b@two.example>",
                mail("B <b@two.example>", "Two", message_id="<b@two.example>"),
            ),
        ],
    )
    holder = apps[0].engine.connect()
    held = holder.begin()
    turn_keys = [("address", "a@one.example"), ("address", "b@two.example")]
    holder.execute(
        text("SELECT pg_advisory_xact_lock(:c, k) FROM unnest(CAST(:keys AS integer[])) AS k"),
        {"c": turn.CONVERSATION_CLASS, "keys": sorted(turn.key_of(*key) for key in turn_keys)},
    )
    results: list[list[ProcessReport]] = []
    runner = threading.Thread(target=lambda: results.append(run_at_once(apps)))
    runner.start()
    mailbox_keys = {turn.key_of("mailbox", name) & 0xFFFFFFFF for name in MAILBOXES}
    try:
        wait_until(
            lambda: (
                {objid for objid, _, granted in lock_rows(apps[0], turn.MAILBOX_CLASS) if granted}
                == mailbox_keys
            )
        )
        rows = lock_rows(apps[0], turn.MAILBOX_CLASS)
        holders = {pid for _, pid, granted in rows if granted}
        assert len(holders) == 2, f"two instances, each in its own mailbox's turn: {rows}"
    finally:
        held.rollback()
        holder.close()
        runner.join(90)
    assert results and sum(report.created for report in results[0]) == 2


def test_hostile_references_and_replies_to_lock_a_bounded_number_of_keys(
    apps: list[App],
) -> None:
    """Thousands of References and Reply-To addresses cost at most 28 keys; two mails
    that refer to each other through two mailboxes are both processed, once each."""
    references = " ".join(f"<r{n}@flood.example>" for n in range(3000))
    reply_to = ", ".join(f"x{n}@d{n}.flood.example" for n in range(200))
    flood = mail(
        "F <f@flood.example>",
        "Flood",
        message_id="<f@flood.example>",
        headers={"References": references, "Reply-To": reply_to},
    )
    parsed = parse_message(flood)
    row = stored(flood, uid=1, at=START)
    with apps[0].sessions() as session:
        keys = conversation.batch_keys(
            apps[0], session, [(row, parsed, classify(parsed, apps[0].identity))]
        )
    assert len(keys.locks) <= 28
    assert len(keys.references[row.id]) == conversation.MAX_REFERENCES

    one = mail(
        "A <a@x.example>", "One", message_id="<one@x.example>", in_reply_to="<two@x.example>"
    )
    two = mail(
        "A <a@x.example>", "Two", message_id="<two@x.example>", in_reply_to="<one@x.example>"
    )
    store(apps[0], [("support", "", one), ("sales", "", two)])
    reports = run_at_once(apps)
    assert sum(report.processed for report in reports) == 2
    assert sum(report.failed for report in reports) == 0


def test_the_domain_limit_holds_across_two_mailboxes_and_two_instances(apps: list[App]) -> None:
    """Distinct senders of one unauthenticated domain write to both mailboxes at once:
    however the batches meet, no more acknowledgements go to the domain than its limit."""
    mails = [
        (box, "", mail(f"S{n} <s{n}@victim.example>", f"Hello {n}", message_id=f"<v{n}.{box}@x>"))
        for n in range(14)
        for box in MAILBOXES
    ]
    store(apps[0], mails)
    reports = run_at_once(apps)
    with apps[0].sessions() as session:
        acks = session.scalars(select(Outbox).where(Outbox.kind == "ack")).all()
    limit = apps[0].config.tickets.ack_domain_limit_per_hour
    assert sum(report.created for report in reports) == len(mails) > limit
    assert len(acks) == limit
