"""The spam purge on both databases: spam whose `[spam] purge_after` has passed is deleted
whole (every row of every table that belonged to it, and what the search index held of
it), not a moment before; a ticket that is no longer spam stays; one event without a
ticket counts what went, and says nothing the mail said; the work goes in batches, each
its own transaction; the daemon does it without a [retention] policy."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from mailbridge.app import App, build_app
from mailbridge.core.states import TicketStatus
from mailbridge.db.models import (
    AddressState,
    Article,
    AttachmentRecord,
    Base,
    Event,
    InboundMessage,
    Outbox,
    Ticket,
    TicketTag,
)
from mailbridge.db.search_index import INDEX_TABLE
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.service.metrics import DatabaseCollector
from mailbridge.tickets import spam_purge
from mailbridge.tickets.search import search_tickets
from mailbridge.tickets.spam_purge import PURGED_EVENT, SpamPurge, purge_spam
from tests.support.builders import drive_daemon, make_config, stored
from tests.support.sla_world import START, World, make_world, policy
from tests.support.spam import mark_spam
from tests.support.staff_world import STAFF, STEPS

pytestmark = pytest.mark.db

DAY = timedelta(days=1)
MARK = "ROLEXREPLICA"  # in everything the spam brought: body, subject, attachment
MARKED = START + DAY  # when ticket 1001 became spam


def spam_mail(subject: str, uid: int, mark: str = MARK) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = "Deals <deals@bulk.example>", "support@shop.example"
    message["Cc"] = "Friend <friend@bulk.example>"
    message["Subject"] = f"{mark} {subject}"
    message["Message-ID"] = f"<{uid}.{mark}@bulk.example>"
    message.set_content(f"Buy {mark} watches today.\n")
    message.add_attachment(mark.encode() * 50, maintype="text", subtype="plain", filename="w.txt")
    return message.as_bytes()


def customer_mail(sender: str, subject: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "support@shop.example", subject
    message["Message-ID"] = f"<{hashlib.sha1(subject.encode()).hexdigest()}@customer.example>"
    message.set_content("Please help.\n")
    message.add_attachment(b"%PDF-1.4 " * 20, maintype="application", subtype="pdf")
    return message.as_bytes()


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    made = make_world(tmp_path, database_url, sla=[policy(levels=STEPS)], staff=STAFF)
    yield made
    made.app.close()


def ticket_id(world: World, number: int) -> int:
    return world.ticket(number).id


def build_scene(world: World) -> None:
    """1000 Ada's; 1001 spam with everything a ticket can have (attachments, a person
    copied, a tag, acknowledgement and notification, a fired escalation, a bounce that
    points at its mail); 1002 spam once, no longer; 1003 merged into 1001. Ada's ticket
    holds an article split off from the spam's mail; a later mail of the spam's ticket
    waits in quarantine."""
    world.receive(customer_mail("Ada <ada@customer.example>", "Printer on fire"))
    world.receive(spam_mail("watches", 1))
    world.receive(spam_mail("more watches", 2, mark="PERHAPSNOT"))
    world.receive(customer_mail("Cy <cy@customer.example>", "Was it spam?"))
    world.at(DAY)
    assert world.sweep() > 0
    mark_spam(world, 1001)
    mark_spam(world, 1002, status=TicketStatus.OPEN)  # marked not spam: spam_at stays
    spam, ada = ticket_id(world, 1001), ticket_id(world, 1000)
    with world.session() as session:
        merged = session.scalars(select(Ticket).where(Ticket.number == 1003)).one()
        merged.status, merged.merged_into_id = TicketStatus.MERGED, spam
        session.add(TicketTag(ticket_id=spam, tag="watches", added_at=world.now))
        ack = session.scalars(select(Outbox).where(Outbox.ticket_id == spam)).first()
        assert ack is not None
        session.add(
            AddressState(address="deals@bulk.example", last_outbox_id=ack.id, updated_at=world.now)
        )
        spam_message = session.scalars(
            select(InboundMessage).where(InboundMessage.ticket_id == spam)
        ).one()
        session.add(
            Article(
                ticket_id=ada,
                direction="in",
                author_kind="customer",
                subject="split off",
                text_body="split off",
                created_at=world.now,
                inbound_message_id=spam_message.id,
            )
        )
        later = stored(spam_mail("quarantined", 3), uid=99, at=world.now, state="quarantined")
        later.ticket_id = spam
        session.add(later)


def table_counts(session: Session) -> dict[str, int]:
    return {
        name: session.scalar(select(func.count()).select_from(table)) or 0
        for name, table in Base.metadata.tables.items()
    }


def owned(session: Session, group: list[int]) -> dict[str, int]:
    """The rows that belong to these tickets, table by table, read plainly."""
    articles = select(Article.id).where(Article.ticket_id.in_(group))
    rows = {"ticket": len(group)}
    for name, table in Base.metadata.tables.items():
        if "ticket_id" in table.c:
            where = table.c.ticket_id.in_(group)
            rows[name] = session.scalar(select(func.count()).select_from(table).where(where)) or 0
    rows["attachment"] = (
        session.scalar(select(func.count()).where(AttachmentRecord.article_id.in_(articles))) or 0
    )
    return rows


def marked_rows(session: Session) -> dict[str, int]:
    """Rows of any table that hold anything of the spam's, in any column."""
    found = {}
    for name, table in Base.metadata.tables.items():
        hits = [row for row in session.execute(select(table)) if MARK in repr(tuple(row))]
        if hits:
            found[name] = len(hits)
    return found


def index_rows(session: Session) -> int:
    return session.scalar(text(f"SELECT count(*) FROM {INDEX_TABLE}")) or 0


def metrics(world: World) -> set[str]:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(DatabaseCollector(world.app, min_reuse=0.0))
    return set(generate_latest(registry).decode().splitlines())


def test_spam_is_purged_whole_after_its_time_and_not_before(world: World) -> None:
    build_scene(world)
    group = [ticket_id(world, 1001), ticket_id(world, 1003)]
    with world.app.sessions() as session:
        before, mine = table_counts(session), owned(session, group)
    assert set(mine) >= {"article", "attachment", "outbox", "event", "escalation"}
    assert all(mine.values()), f"the scene leaves some kind of row out: {mine}"

    world.at(DAY + 30 * DAY - timedelta(seconds=1))
    assert purge_spam(world.app) == SpamPurge(MARKED - timedelta(seconds=1))
    world.at(DAY + 30 * DAY + timedelta(seconds=1))
    dry = purge_spam(world.app, dry_run=True)
    with world.app.sessions() as session:
        assert table_counts(session) == before, "a dry run changes nothing"
    done = purge_spam(world.app)

    assert done == dry
    assert (done.tickets, done.articles, done.attachments, done.batches) == (
        2,
        mine["article"],
        mine["attachment"],
        1,
    )
    assert done.messages == mine["inbound_message"] - 2, "quarantine and the split stay"
    with world.app.sessions() as session:
        after = table_counts(session)
        kept = session.scalars(
            select(InboundMessage.state).where(func.length(InboundMessage.raw) > 0)
        ).all()
        marked = marked_rows(session)
        assert index_rows(session) == after["article"]
        assert search_tickets(session, MARK, status="spam") == []
        assert session.scalar(select(AddressState.last_outbox_id)) is None
    expected = {name: before[name] - mine.get(name, 0) for name in before}
    expected["event"] += 1  # what went, counted
    expected["inbound_message"] += 2  # the quarantined mail and the split one stay
    assert after == expected
    assert sorted(kept) == ["processed", "processed", "processed", "quarantined"]
    assert marked == {"inbound_message": 2}, "only the quarantined and the split mail"
    assert [t.number for t in world.tickets()] == [1000, 1002]

    (event,) = world.events(PURGED_EVENT)
    assert event.ticket_id is None
    assert event.data == {
        "spam_before": (MARKED + timedelta(seconds=1)).isoformat(),
        **done.counts(),
        "mailboxes": {"support": 2},
    }
    lines = metrics(world)
    assert 'mailbridge_tickets_opened_total{mailbox="support"} 4.0' in lines, "never down"
    assert 'mailbridge_spam_tickets_purged_total{mailbox="support"} 2.0' in lines
    assert "mailbridge_spam_tickets 0.0" in lines
    assert not purge_spam(world.app).anything


def test_the_purge_goes_in_batches_each_its_own_transaction(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    many_spam(world.app, 7, MARKED)
    monkeypatch.setattr(spam_purge, "BATCH", 3)
    real, calls = spam_purge._purge_batch, []

    def third_fails(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the database went away")
        return real(*args)

    monkeypatch.setattr(spam_purge, "_purge_batch", third_fails)
    world.at(40 * DAY)
    with pytest.raises(RuntimeError):
        purge_spam(world.app)
    assert len(world.tickets()) == 1, "two batches stayed done"
    assert [e.data["tickets"] for e in world.events(PURGED_EVENT)] == [3, 3]

    monkeypatch.setattr(spam_purge, "_purge_batch", real)
    assert purge_spam(world.app).batches == 1
    assert world.tickets() == []


def test_a_thousand_spam_tickets_take_three_batches(world: World) -> None:
    many_spam(world.app, 1_200, MARKED)
    world.at(40 * DAY)
    report = purge_spam(world.app)
    assert (report.tickets, report.articles, report.batches) == (1_200, 1_200, 3)
    assert [e.data["tickets"] for e in world.events(PURGED_EVENT)] == [500, 500, 200]
    with world.app.sessions() as session:
        assert table_counts(session)["article"] == index_rows(session) == 0


def many_spam(app: App, count: int, at: datetime) -> None:
    """`count` spam tickets with one article each, written in bulk."""
    with app.transaction() as session:
        session.execute(
            insert(Ticket),
            [
                {
                    "number": 5000 + n,
                    "subject": f"{MARK} {n}",
                    "requester_address": f"s{n}@bulk.example",
                    "mailbox": "support",
                    "queue": "support",
                    "sla_policy": "standard",
                    "status": TicketStatus.SPAM,
                    "created_at": at,
                    "updated_at": at,
                    "spam_at": at,
                }
                for n in range(count)
            ],
        )
        ids = session.scalars(select(Ticket.id)).all()
        session.execute(
            insert(Article),
            [
                {
                    "ticket_id": i,
                    "direction": "in",
                    "author_kind": "customer",
                    "subject": MARK,
                    "text_body": MARK,
                    "created_at": at,
                }
                for i in ids
            ],
        )


@pytest.mark.integration
def test_the_daemon_purges_spam_without_a_retention_policy(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, sqlite_url: str
) -> None:
    config = make_config(tmp_path, database_url=sqlite_url, imap=imap_server, smtp=smtp_sink)
    assert config.retention.purge_after is None
    app = build_app(config)
    now = datetime.now(UTC)

    def numbers() -> list[int | None]:
        with app.sessions() as session:
            return list(session.scalars(select(Ticket.number)))

    try:
        many_spam(app, 2, now)
        with app.transaction() as session:
            old = session.scalars(select(Ticket).where(Ticket.number == 5000)).one()
            old.spam_at = now - 31 * DAY

        async def scenario() -> None:
            for _ in range(100):  # the purge runs as the daemon starts
                if await asyncio.to_thread(numbers) == [5001]:
                    return
                await asyncio.sleep(0.1)
            raise AssertionError("the daemon did not purge the old spam")

        drive_daemon(app, lambda _daemon: scenario())
        with app.sessions() as session:
            data = session.scalars(select(Event.data).where(Event.type == PURGED_EVENT)).all()
        assert [d["tickets"] for d in data] == [1]
    finally:
        app.close()
