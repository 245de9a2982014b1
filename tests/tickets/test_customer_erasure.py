"""`customer erase` on both databases: after it, no column of any table the database lists
(the search index's tables too, and on SQLite the database file itself) holds Zelda's
address in any case, her name or the word only her mail had; ticket numbers, times and the
reports stay as they were; a dry run and a second erasure change nothing; the work goes in
batches that a crash can cut and a second run finishes; two erasures at once both succeed."""

from __future__ import annotations

import email
import email.message
import email.policy
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import make_url

from mailbridge.app import build_app
from mailbridge.clock import FrozenClock
from mailbridge.core.erasure import ERASED, erasure_key, pseudonym
from mailbridge.core.report import GROUPINGS, Period
from mailbridge.core.states import TicketStatus
from mailbridge.db.models import (
    Article,
    Event,
    InboundMessage,
    Outbox,
    Ticket,
    TicketParticipant,
)
from mailbridge.reports.make import make_report
from mailbridge.reports.weekly import send_weekly_report
from mailbridge.tickets import customer_erasure
from mailbridge.tickets.customer_erasure import ERASED_EVENT, erase_customer
from mailbridge.tickets.erasure import CONTENT_ERASED, WITHDRAWN
from mailbridge.tickets.search import search_tickets
from tests.support.customer_scene import (
    CAROL_WORD,
    NEEDLES,
    WORD,
    ZELDA,
    build_scene,
    dump,
    traces,
    zelda_mail,
)
from tests.support.sla_world import START, World, make_world, policy
from tests.support.staff_world import STAFF, STEPS

pytestmark = pytest.mark.db

DAY = timedelta(days=1)


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    made = make_world(tmp_path, database_url, sla=[policy(levels=STEPS)], staff=STAFF)
    yield made
    made.app.close()


def records(world: World) -> list[tuple[Any, ...]]:
    """What the statistics are made of, per ticket."""
    return [
        (t.number, t.status, t.created_at, t.updated_at, t.first_responded_at, t.resolved_at)
        + (t.queue, t.mailbox, t.priority, t.escalation_level)
        for t in world.tickets()
    ]


def reports(world: World) -> dict[str, Any]:
    period = Period(START - DAY, START + 30 * DAY)
    return {by: make_report(world.app, period, by) for by in GROUPINGS}


def mail_ids_of(world: World, number: int) -> list[str | None]:
    """The Message-IDs of the ticket's articles and of the mail they came from (the test
    store leaves the latter empty: it is set here as fetch sets it)."""
    with world.session() as session:
        ticket_id = world.ticket(number).id
        articles = session.scalars(select(Article).where(Article.ticket_id == ticket_id)).all()
        for article in articles:
            message = session.get_one(InboundMessage, article.inbound_message_id)
            message.message_id = message.message_id or article.message_id
        return [a.message_id for a in articles] + [
            session.get_one(InboundMessage, a.inbound_message_id).message_id for a in articles
        ]


def her_pseudonym(world: World) -> str:
    return pseudonym(erasure_key(world.app.reply_secret), ZELDA)


def test_nothing_of_her_is_left_and_the_record_stays(world: World) -> None:
    build_scene(world)
    carols = mail_ids_of(world, 1002)
    before = traces(world.app.engine)
    index = "article_fts.document" if "article_fts.document" in before else "article_fts.body"
    assert {"inbound_message.raw", "outbox.raw", "event.data", index} <= set(before)
    assert {"attachment.data", "ticket_participant.address", "sender_rule.pattern"} <= set(before)
    kept, figures, rows = records(world), reports(world), dump(world.app.engine)

    dry = erase_customer(world.app, ZELDA, dry_run=True)
    assert dump(world.app.engine) == rows, "a dry run changes nothing"
    done = erase_customer(world.app, ZELDA)

    assert (done.rows, done.tickets) == (dry.rows, dry.tickets)
    assert done.tickets == 2  # hers, and Bob's that copied her
    assert traces(world.app.engine) == {}
    assert records(world) == kept
    assert reports(world) == figures
    assert done.pseudonym_id in her_pseudonym(world)
    ours = {t.number: t for t in world.tickets()}
    assert ours[1000].requester_address == her_pseudonym(world)
    assert ours[1000].subject == ERASED and ours[1000].requester_name == ""
    assert ours[1001].requester_address == "bob@customer.example"
    with world.app.sessions() as session:
        assert session.scalars(
            select(TicketParticipant.address).where(TicketParticipant.ticket_id == ours[1001].id)
        ).all() == [her_pseudonym(world)]
        assert [h.number for h in search_tickets(session, CAROL_WORD)] == [1002]
        assert search_tickets(session, WORD) == []
        carol = session.scalars(select(Article).where(Article.ticket_id == ours[1002].id)).one()
    assert f"my colleague {her_pseudonym(world)} told me" in carol.text_body
    assert mail_ids_of(world, 1002) == carols, "Carol's Message-ID is hers, and stays"
    with world.app.sessions() as session:
        assert session.get_one(InboundMessage, carol.inbound_message_id).raw == b""
    (changed,) = [e for e in world.events("requester_changed")]
    assert changed.data == {
        "by": "command line",
        "old": her_pseudonym(world),
        "new": "dan@customer.example",
        "name": ERASED,
    }
    (rated,) = world.events("rated")
    assert rated.data == {"verdict": "good", "how": "text", "by": her_pseudonym(world)}
    waiting = world.mails("collision")[-1]
    assert (waiting.state, waiting.last_error, waiting.raw) == ("failed", WITHDRAWN, b"")
    (audit,) = world.events(ERASED_EVENT)
    assert audit.ticket_id is None
    assert audit.data == {"pseudonym_id": done.pseudonym_id, "tickets": 2, "rows": done.rows}
    assert sorted(e.ticket_id for e in world.events(CONTENT_ERASED)) == sorted(
        [ours[1000].id, ours[1001].id]
    )

    after = dump(world.app.engine)
    again = erase_customer(world.app, ZELDA)
    assert not again.anything and again.tickets == 0
    assert dump(world.app.engine) == after, "a second erasure changes nothing"


def test_on_sqlite_the_database_file_holds_nothing_of_her(world: World) -> None:
    url = make_url(str(world.app.engine.url))
    if url.get_backend_name() != "sqlite":
        pytest.skip("the file of a SQLite database")
    build_scene(world)
    path = Path(str(url.database))
    assert _in_files(path) != set(), "the scene wrote her into the file"
    erase_customer(world.app, ZELDA)
    world.app.close()
    assert _in_files(path) == set()


def _in_files(path: Path) -> set[str]:
    found = set()
    for file in path.parent.glob(path.name + "*"):
        data = file.read_bytes().lower()
        found |= {needle for needle in NEEDLES if needle.encode() in data}
    return found


def test_the_work_goes_in_batches_and_a_second_run_finishes_a_cut_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(7):
        world.receive(zelda_mail(f"order {n}", n=10 + n))
    monkeypatch.setattr(customer_erasure, "BATCH", 3)
    real, calls = customer_erasure.erase_content, []

    def second_fails(*args: Any, **keys: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return real(*args, **keys)

    monkeypatch.setattr(customer_erasure, "erase_content", second_fails)
    with pytest.raises(RuntimeError):
        erase_customer(world.app, ZELDA)
    assert [e.data["tickets"] for e in world.events(ERASED_EVENT)] == [3]
    assert sum(t.requester_address == ZELDA for t in world.tickets()) == 4

    monkeypatch.setattr(customer_erasure, "erase_content", real)
    done = erase_customer(world.app, ZELDA)
    assert (done.tickets, done.batches) == (4, 2)
    assert [e.data["tickets"] for e in world.events(ERASED_EVENT)] == [3, 3, 1]
    assert traces(world.app.engine) == {}


@pytest.mark.postgres
def test_two_erasures_at_once_both_succeed_and_share_the_work(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(customer_erasure, "BATCH", 5)
    world = make_world(tmp_path, postgres_url, sla=[policy(levels=STEPS)], staff=STAFF)
    other = build_app(world.app.config, clock=FrozenClock(world.now))
    try:
        _many_tickets(world, 40)
        results: list[Any] = []

        def erase(app: Any) -> None:
            results.append(erase_customer(app, ZELDA))

        threads = [threading.Thread(target=erase, args=(app,)) for app in (world.app, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(results) == 2, "an erasure failed"
        assert sum(r.tickets for r in results) == 40
        assert traces(world.app.engine) == {}
        assert len(world.events(CONTENT_ERASED)) == 40
    finally:
        other.close()
        world.app.close()


def _many_tickets(world: World, count: int) -> None:
    """`count` tickets of hers with an article each, written in bulk."""
    now = world.now
    with world.session() as session:
        session.execute(
            insert(Ticket),
            [
                {
                    "number": 5000 + n,
                    "subject": f"{WORD} {n}",
                    "requester_address": ZELDA,
                    "mailbox": "support",
                    "queue": "support",
                    "sla_policy": "standard",
                    "status": TicketStatus.OPEN,
                    "created_at": now,
                    "updated_at": now,
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
                    "from_address": ZELDA,
                    "subject": WORD,
                    "text_body": f"{WORD} text",
                    "created_at": now,
                }
                for i in ids
            ],
        )
        session.execute(
            insert(Event), [{"ticket_id": i, "at": now, "type": "created", "data": {}} for i in ids]
        )
        session.add(
            Outbox(
                ticket_id=ids[0],
                kind="ack",
                envelope_from="support@shop.example",
                envelope_to=[ZELDA],
                message_id="mb.ack.5000@shop.example",
                raw=f"To: {ZELDA}\r\n\r\n{WORD}\r\n".encode(),
                state="sent",
                next_attempt_at=now,
                created_at=now,
            )
        )


def test_her_webhook_deliveries_and_the_weekly_report_keep_nothing_of_her(
    tmp_path: Path, database_url: str
) -> None:
    """Two more places her words reach: a webhook that carries the customer's text
    (`include_text`), and the weekly report's table of the worst waits, which names her
    subject without her ticket being its own."""
    hook = {
        "name": "chat",
        "url": "http://127.0.0.1:9/hook",
        "events": ["ticket_created"],
        "include_text": True,
    }
    reports = {"weekly_to": ["lead@shop.example"], "weekly_on": "mon 00:00"}
    world = make_world(
        tmp_path, database_url, sla=[policy(levels=STEPS)], webhook=[hook], reports=reports
    )
    try:
        world.receive(zelda_mail("order 17"))
        (delivery,) = world.mails("webhook")
        assert ZELDA.encode() in delivery.raw.lower() and WORD.encode() in delivery.raw
        world.advance(8 * DAY)
        assert send_weekly_report(world.app) == 1
        (weekly,) = world.mails("report")
        assert weekly.ticket_id is None
        assert WORD.lower() in _report_text(weekly.raw).lower()

        erase_customer(world.app, ZELDA)

        assert traces(world.app.engine) == {}
        assert [row.id for row in world.mails("webhook")] == [delivery.id]
    finally:
        world.app.close()


def _report_text(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return "".join(str(part.get_content()) for part in message.walk() if not part.is_multipart())
