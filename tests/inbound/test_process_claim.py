"""Two processors on one database, as two instances would run them: each stored message is
processed once, each conversation is one ticket whoever processed which part of it, the
acknowledgement limit holds across both, and no attempt is counted twice."""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select, update

from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.db.models import InboundMessage, Outbox, Ticket
from mailbridge.inbound import process
from mailbridge.inbound.process import ProcessReport, process_pending
from tests.support.builders import mail, make_config, stored
from tests.support.sla_world import NOWHERE, START

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]

CONVERSATIONS = 10  # each a first mail and two follow-ups, each answering the one before
BUSY = 8  # new conversations from one sender, more than the hourly acknowledgement limit


def conversation_mails() -> list[tuple[str, bytes]]:
    """(conversation, raw) in the order they arrive: first mails, then each round of replies."""
    arrived = []
    for n in range(CONVERSATIONS):
        arrived.append(
            (
                f"c{n}",
                mail(
                    f"C{n} <c{n}@customer.example>",
                    f"Order {n}",
                    message_id=f"<c{n}.0@customer.example>",
                ),
            )
        )
        if n < BUSY:
            arrived.append(
                (
                    f"busy{n}",
                    mail(
                        "Busy <busy@customer.example>",
                        f"Question {n}",
                        message_id=f"<busy{n}@customer.example>",
                    ),
                )
            )
    for k in (1, 2):
        arrived += [
            (
                f"c{n}",
                mail(
                    f"C{n} <c{n}@customer.example>",
                    f"Re: Order {n}",
                    message_id=f"<c{n}.{k}@customer.example>",
                    in_reply_to=f"<c{n}.{k - 1}@customer.example>",
                ),
            )
            for n in range(CONVERSATIONS)
        ]
    return arrived


def store(app: App, raws: list[bytes], first_uid: int = 1) -> list[int]:
    """Stored as fetch stores them, unprocessed; their ids."""
    with app.transaction() as session:
        rows = [stored(raw, uid=uid, at=START) for uid, raw in enumerate(raws, start=first_uid)]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def test_two_processors_process_each_message_once_and_thread_across_each_other(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "BATCH", 3)  # many small turns, taken in alternation
    config = make_config(tmp_path, database_url=database_url, imap=NOWHERE, smtp=NOWHERE)
    apps = [build_app(config, clock=FrozenClock(START)) for _ in range(2)]
    try:
        arrived = conversation_mails()
        ids = store(apps[0], [raw for _, raw in arrived])
        reports: list[ProcessReport] = []
        barrier = threading.Barrier(2)

        def processor(app: App) -> None:
            barrier.wait()
            reports.append(process_pending(app))

        threads = [threading.Thread(target=processor, args=(app,)) for app in apps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        with apps[0].sessions() as session:
            inbound = {row.id: row for row in session.scalars(select(InboundMessage))}
            tickets = session.scalars(select(Ticket)).all()
            acks = session.scalars(select(Outbox).where(Outbox.kind == "ack")).all()
    finally:
        for app in apps:
            app.close()

    assert sum(report.processed for report in reports) == len(arrived), "each message once"
    assert sum(report.failed for report in reports) == 0
    assert {row.state for row in inbound.values()} == {"processed"}
    if database_url.startswith("postgresql"):
        # Claims are made under the mailbox's lock: none counts an attempt on a message the
        # other instance has claimed. (One mailbox is one turn: a processor that finds it
        # taken leaves it to the other, which works through it.)
        assert {row.attempts for row in inbound.values()} == {1}

    tickets_of: dict[str, set[int | None]] = defaultdict(set)
    for (name, _), inbound_id in zip(arrived, ids, strict=True):
        tickets_of[name].add(inbound[inbound_id].ticket_id)
    assert all(len(found) == 1 for found in tickets_of.values()), "one ticket per conversation"
    assert len(tickets) == len(tickets_of) == CONVERSATIONS + BUSY
    assert len({ticket.number for ticket in tickets}) == len(tickets)
    assert sum(report.created for report in reports) == len(tickets)

    limit = config.tickets.ack_limit_per_hour
    to_busy = [ack for ack in acks if ack.envelope_to == ["busy@customer.example"]]
    assert len(to_busy) == limit < BUSY, "the hourly limit holds across both processors"
    assert len(acks) == CONVERSATIONS + limit
    assert sum(report.acknowledged for report in reports) == len(acks)


def test_a_reply_waits_for_its_parent_whose_pass_was_killed(
    tmp_path: Path, database_url: str
) -> None:
    """A kill -9 mid-batch leaves its messages with an attempt counted; mail stored after
    them, replies to them included, must still be processed after them, in arrival order."""
    config = make_config(tmp_path, database_url=database_url, imap=NOWHERE, smtp=NOWHERE)
    app = build_app(config, clock=FrozenClock(START))
    try:
        parents = [
            mail(
                f"P{n} <p{n}@customer.example>", f"Order {n}", message_id=f"<p{n}@customer.example>"
            )
            for n in range(3)
        ]
        killed = store(app, parents)
        with app.transaction() as session:  # claimed, then the process died
            session.execute(
                update(InboundMessage).where(InboundMessage.id.in_(killed)).values(attempts=1)
            )
        replies = [
            mail(
                f"P{n} <p{n}@customer.example>",
                f"Re: Order {n}",
                "Any news?",
                message_id=f"<r{n}@customer.example>",
                in_reply_to=f"<p{n}@customer.example>",
            )
            for n in range(3)
        ]
        store(app, replies, first_uid=len(parents) + 1)

        report = process_pending(app)

        with app.sessions() as session:
            tickets = session.scalars(select(Ticket)).all()
            ticket_ids = {row.ticket_id for row in session.scalars(select(InboundMessage))}
    finally:
        app.close()
    assert report.processed == 6 and report.created == 3
    assert len(tickets) == 3 and len(ticket_ids) == 3, "each reply joined its parent's ticket"
