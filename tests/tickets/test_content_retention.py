"""Retention's `erase_content_after` on both databases: tickets closed longer ago lose their
content (subjects, texts, attachments, raw and sent mail, the text of their events) through
the customer erasure's code, and keep their record and who wrote; recently closed and open
tickets, quarantined mail and mail still waiting are left alone; a dry run and a second run
change nothing; a ticket closed again after its erasure is erased again in its turn; the
daemon does it on the retention schedule."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select, update

from mailbridge.app import build_app
from mailbridge.cli.main import main
from mailbridge.core.erasure import ERASED
from mailbridge.db.models import Article, AttachmentRecord, InboundMessage, Outbox, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.tickets.content_retention import ContentErased, erase_closed_content
from mailbridge.tickets.erasure import CONTENT_ERASED
from mailbridge.tickets.search import search_tickets
from tests.support.builders import drive_daemon, make_config, stored, write_config_file
from tests.support.customer_scene import dump, traces
from tests.support.sla_world import NOWHERE, START, World, make_world

pytestmark = pytest.mark.db

DAY = timedelta(days=1)


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    made = make_world(tmp_path, database_url, retention={"erase_content_after": "30d"})
    yield made
    made.app.close()


def customer_mail(name: str, word: str) -> bytes:
    message = EmailMessage()
    message["From"] = f"{name} <{name.lower()}@c.example>"
    message["To"], message["Subject"] = "support@shop.example", f"{word} subject"
    message["Message-ID"] = f"<{name.lower()}.{len(word)}@c.example>"
    message.set_content(f"All about {word}.\n")
    message.add_alternative(f"<p>{word}</p>", subtype="html")
    message.add_attachment(
        word.encode() * 10, maintype="text", subtype="plain", filename=f"{word}.txt"
    )
    return message.as_bytes()


def close(world: World, number: int, day: int) -> None:
    with world.session() as session:
        session.execute(
            update(Ticket)
            .where(Ticket.number == number)
            .values(status="closed", resolved_at=START + day * DAY)
        )
        session.execute(update(Outbox).values(state="sent"))


def record(world: World, number: int) -> tuple[object, ...]:
    t = world.ticket(number)
    return (t.number, t.status, t.requester_address, t.requester_name, t.created_at, t.resolved_at)


def rows_of(world: World, words: list[str]) -> dict[str, int]:
    """Where the words are, but for the search index's segments, which merging rewrites."""
    found = traces(world.app.engine, words)
    return {
        k: n for k, n in found.items() if not k.startswith(("article_fts_data", "article_fts_idx"))
    }


def test_old_closed_tickets_lose_their_content_and_keep_their_record(world: World) -> None:
    world.receive(customer_mail("Ada", "adaword"))  # 1000: closed long ago
    world.receive(customer_mail("Bob", "bobword"))  # 1001: closed lately
    world.receive(customer_mail("Cy", "cyword"))  # 1002: open
    close(world, 1000, 2)
    close(world, 1001, 40)
    ada = world.ticket(1000).id
    with world.session() as session:  # a later mail of hers waits for a person
        held = stored(customer_mail("Ada", "heldword"), uid=50, at=world.now, state="quarantined")
        held.ticket_id = ada
        session.add(held)
    world.at(45 * DAY)
    world.receive(customer_mail("Dee", "deeword"))  # its acknowledgement stays pending
    with world.session() as session:
        session.execute(update(Outbox).where(Outbox.state == "pending").values(ticket_id=ada))
    kept = {n: record(world, n) for n in (1000, 1001, 1002)}
    others = rows_of(world, ["bobword", "cyword", "heldword"])
    before = dump(world.app.engine)

    dry = erase_closed_content(world.app, dry_run=True)
    assert dump(world.app.engine) == before, "a dry run changes nothing"
    done = erase_closed_content(world.app)

    assert done == dry and done.tickets == 1 and done.cutoff == START + 15 * DAY
    assert traces(world.app.engine, ["adaword"]) == {}
    assert rows_of(world, ["bobword", "cyword", "heldword"]) == others
    with world.app.sessions() as session:
        assert [h.number for h in search_tickets(session, "bobword", status="closed")] == [1001]
    assert {n: record(world, n) for n in (1000, 1001, 1002)} == kept, "who wrote stays"
    assert world.ticket(1000).subject == ERASED
    with world.app.sessions() as session:
        attachment = session.scalars(
            select(AttachmentRecord)
            .join(Article, Article.id == AttachmentRecord.article_id)
            .where(Article.ticket_id == ada)
        ).one()
        pending = session.scalars(select(Outbox).where(Outbox.state == "pending")).all()
        quarantined = session.scalars(
            select(InboundMessage).where(InboundMessage.state == "quarantined")
        ).one()
    assert (attachment.filename, attachment.data, attachment.storage) == (None, None, "erased")
    assert attachment.size == len(b"adaword" * 10) and attachment.content_type == "text/plain"
    assert len(pending) == 2 and all(row.raw or row.recipe for row in pending), "still goes"
    assert b"heldword" in quarantined.raw
    (event,) = world.events(CONTENT_ERASED)
    assert (event.ticket_id, event.data) == (ada, {"reason": "retention"})
    (created,) = [e for e in world.events("created") if e.ticket_id == ada]
    assert created.data["message_id"] == ERASED and created.data["kind"] == "customer"
    with world.app.sessions() as session:  # metadata: threading still finds the ticket
        assert session.scalars(
            select(Article.message_id).where(Article.ticket_id == ada)
        ).all() == ["ada.7@c.example"]

    after = dump(world.app.engine)
    assert erase_closed_content(world.app) == ContentErased(START + 15 * DAY, 0, {}, 0)
    assert dump(world.app.engine) == after, "a second run changes nothing"


def test_a_ticket_closed_again_after_its_erasure_is_erased_again(world: World) -> None:
    world.receive(customer_mail("Ada", "adaword"))
    close(world, 1000, 1)
    world.at(40 * DAY)
    assert erase_closed_content(world.app).tickets == 1
    ada = world.ticket(1000).id
    with world.session() as session:  # she wrote again; it was answered and closed
        session.add(
            Article(
                ticket_id=ada,
                direction="in",
                author_kind="customer",
                subject="again",
                text_body="secondword",
                created_at=world.now,
            )
        )
    close(world, 1000, 41)
    world.at(60 * DAY)
    assert erase_closed_content(world.app).tickets == 0, "closed 19 days ago"
    world.at(72 * DAY)
    assert erase_closed_content(world.app).tickets == 1
    assert traces(world.app.engine, ["secondword"]) == {}


def test_without_erase_content_after_nothing_is_erased(tmp_path: Path, database_url: str) -> None:
    world = make_world(tmp_path, database_url)
    try:
        world.receive(customer_mail("Ada", "adaword"))
        close(world, 1000, 0)
        world.at(3650 * DAY)
        assert erase_closed_content(world.app) == ContentErased()
        assert world.ticket(1000).subject == "adaword subject"
    finally:
        world.app.close()


@pytest.mark.integration
def test_the_daemon_erases_old_content_on_the_retention_schedule(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, sqlite_url: str
) -> None:
    config = make_config(
        tmp_path,
        database_url=sqlite_url,
        imap=imap_server,
        smtp=smtp_sink,
        retention={"erase_content_after": "30d"},
    )
    app = build_app(config)
    long_ago = datetime.now(UTC) - 40 * DAY

    def subjects() -> list[str]:
        with app.sessions() as session:
            return list(session.scalars(select(Ticket.subject).order_by(Ticket.number)))

    try:
        with app.transaction() as session:
            for number, subject in ((1000, "old one"), (1001, "new one")):
                session.add(
                    Ticket(
                        number=number,
                        subject=subject,
                        requester_address="ada@c.example",
                        mailbox="support",
                        queue="support",
                        sla_policy="standard",
                        status="closed",
                        created_at=long_ago,
                        updated_at=long_ago,
                        resolved_at=long_ago if number == 1000 else datetime.now(UTC),
                    )
                )

        async def scenario() -> None:
            for _ in range(100):  # the purge runs as the daemon starts
                if await asyncio.to_thread(subjects) == [ERASED, "new one"]:
                    return
                await asyncio.sleep(0.1)
            raise AssertionError("the daemon did not erase the old content")

        drive_daemon(app, lambda _daemon: scenario())
    finally:
        app.close()


def test_mailbridge_purge_erases_old_content_and_its_dry_run_erases_nothing(
    tmp_path: Path,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MB_UNUSED", "never used: purge reads no mailbox")
    path = write_config_file(tmp_path, NOWHERE, NOWHERE, database_url, password_env="MB_UNUSED")
    path.write_text(path.read_text() + '\n[retention]\nerase_content_after = "30d"\n')
    world = make_world(tmp_path, database_url)
    try:
        world.receive(customer_mail("Ada", "adaword"))
        close(world, 1000, -40)  # closed 40 days before now, the real clock's now
        with world.session() as session:
            session.execute(update(Ticket).values(resolved_at=datetime.now(UTC) - 40 * DAY))
    finally:
        world.app.close()

    assert main(["--config", str(path), "purge", "--dry-run"]) == 0
    said = capsys.readouterr().out
    assert said.startswith("would remove: the content of 1 ticket(s) closed before ")
    assert "article 1" in said and "attachment 1" in said
    assert main(["--config", str(path), "purge"]) == 0
    assert capsys.readouterr().out.startswith("removed: the content of 1 ticket(s)")
    assert main(["--config", str(path), "purge"]) == 0
    assert capsys.readouterr().out == "nothing to remove\n"
