"""Retention on both databases: long-closed tickets lose their raw mail and attachment
bytes (and whatever else the policy names); the ticket, its articles' text and its audit
trail stay; everything else is untouched; a dry run counts without changing anything."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mailbridge.db.models import Article, AttachmentRecord, InboundMessage, Outbox, Ticket
from mailbridge.tickets.retention import PurgeReport, purge
from tests.support.builders import mail, stored
from tests.support.sla_world import START, World, make_world

pytestmark = pytest.mark.db

DAY = timedelta(days=1)
PHOTO = bytes(range(256)) * 40  # 10,240 bytes


Worlds = Callable[..., World]


@pytest.fixture
def worlds(tmp_path: Path, database_url: str) -> Iterator[Worlds]:
    made: list[World] = []

    def world(**sections: Any) -> World:
        made.append(make_world(tmp_path, database_url, **sections))
        return made[-1]

    yield world
    for each in made:
        each.app.close()


def with_attachment(sender: str, subject: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "support@shop.example", subject
    message["Message-ID"] = f"<{hashlib.sha1(subject.encode()).hexdigest()}@customer.example>"
    message.set_content("The photo of the broken part is attached.\n")
    message.add_alternative("<p>The photo of the broken part is attached.</p>", subtype="html")
    message.add_attachment(PHOTO, maintype="image", subtype="png", filename="part.png")
    return message.as_bytes()


def close(world: World, number: int, days_after_start: int) -> None:
    with world.session() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        ticket.status, ticket.resolved_at = "closed", START + days_after_start * DAY
    with world.session() as session:  # as if the acknowledgements went out
        for row in session.scalars(select(Outbox)):
            row.state = "sent"


def stray(world: World, state: str, uid: int) -> None:
    """A stored message that made no ticket (ignored automated mail, or quarantined)."""
    raw = mail(subject=f"stray {state}")
    with world.session() as session:
        session.add(stored(raw, uid=uid, at=START, state=state, attempts=5))


def bytes_of(world: World, number: int) -> dict[str, int]:
    with world.app.sessions() as session:
        ticket_id = session.scalars(select(Ticket.id).where(Ticket.number == number)).one()
        articles = select(Article.id).where(Article.ticket_id == ticket_id)
        return {
            "raw": session.scalar(
                select(func.sum(func.length(InboundMessage.raw))).where(
                    InboundMessage.ticket_id == ticket_id
                )
            )
            or 0,
            # Mails that still hold what they send: bytes, or a recipe to render them from.
            "outbox": session.scalar(
                select(func.count()).where(
                    Outbox.ticket_id == ticket_id,
                    (func.length(Outbox.raw) > 0) | Outbox.recipe.is_not(None),
                )
            )
            or 0,
            "attachments": session.scalar(
                select(func.count()).where(
                    AttachmentRecord.article_id.in_(articles), AttachmentRecord.data.is_not(None)
                )
            )
            or 0,
            "text": len(
                session.scalars(select(Article.text_body).where(Article.id.in_(articles))).first()
                or ""
            ),
        }


def test_purge_removes_bytes_of_long_closed_tickets_and_keeps_the_record(
    worlds: Worlds,
) -> None:
    world = worlds(retention={"purge_after": "30d"})
    world.receive(with_attachment("Ada <ada@c.example>", "Old and closed"))  # 1000
    world.receive(with_attachment("Bob <bob@c.example>", "Closed lately"))  # 1001
    world.receive(with_attachment("Cy <cy@c.example>", "Still open"))  # 1002
    stray(world, "ignored", 100)
    stray(world, "quarantined", 101)
    close(world, 1000, 2)
    close(world, 1001, 40)
    world.at(45 * DAY)
    before = {n: bytes_of(world, n) for n in (1000, 1001, 1002)}
    assert before[1000]["raw"] > len(PHOTO) and before[1000]["attachments"] == 1

    dry = purge(world.app, dry_run=True)
    # outbox: the acknowledgement and the staff notification of ticket 1000
    assert (dry.tickets, dry.raw, dry.attachments, dry.outbox, dry.unattached) == (1, 1, 1, 2, 1)
    assert dry.attachments_bytes == len(PHOTO) and dry.raw_bytes == before[1000]["raw"]
    assert {n: bytes_of(world, n) for n in (1000, 1001, 1002)} == before, "dry run changed data"

    done = purge(world.app)
    assert done == dry
    assert bytes_of(world, 1000) == {
        "raw": 0,
        "outbox": 0,
        "attachments": 0,
        "text": before[1000]["text"],
    }
    assert bytes_of(world, 1001) == before[1001] and bytes_of(world, 1002) == before[1002]
    with world.app.sessions() as session:
        strays: dict[str, int] = dict(
            session.execute(
                select(InboundMessage.state, func.length(InboundMessage.raw)).where(
                    InboundMessage.ticket_id.is_(None)
                )
            ).all()
        )
        attachment = session.scalars(select(AttachmentRecord).order_by(AttachmentRecord.id)).first()
    assert strays["ignored"] == 0 and strays["quarantined"] > 0, "quarantine waits for a person"
    assert attachment is not None
    assert (attachment.filename, attachment.size, attachment.storage) == (
        "part.png",
        len(PHOTO),
        "purged",
    )
    purged = world.events("purged")
    assert len(purged) == 1
    assert purged[0].data["raw"] == 1 and purged[0].data["attachments"] == 1
    assert [e.type for e in world.events("created")], "the audit trail stays"

    assert not purge(world.app).anything, "a second run finds nothing left"


def test_the_policy_can_also_take_html_and_text_and_can_keep_sent_mail(
    worlds: Worlds,
) -> None:
    world = worlds(retention={"purge_after": "7d", "purge": ["raw", "html", "text"]})
    world.receive(with_attachment("Ada <ada@c.example>", "Old and closed"))
    close(world, 1000, 0)
    world.at(8 * DAY)

    report = purge(world.app)

    assert (report.raw, report.html, report.text, report.attachments, report.outbox) == (
        1,
        1,
        1,
        0,
        0,
    )
    left = bytes_of(world, 1000)
    assert left["raw"] == 0 and left["text"] == 0
    assert left["attachments"] == 1 and left["outbox"] > 0
    with world.app.sessions() as session:
        assert session.scalars(select(Article.html_body)).all() == [None]
        assert session.scalars(select(Ticket.subject)).all() == ["Old and closed"]
    assert world.events("purged")[0].data == {
        "closed_before": (START + 8 * DAY - 7 * DAY).isoformat(),
        "raw": 1,
        "html": 1,
        "text": 1,
    }


def test_without_purge_after_nothing_is_purged(worlds: Worlds) -> None:
    world = worlds()
    world.receive(with_attachment("Ada <ada@c.example>", "Old and closed"))
    close(world, 1000, 0)
    world.at(3650 * DAY)
    assert purge(world.app) == PurgeReport()
    assert bytes_of(world, 1000)["attachments"] == 1
