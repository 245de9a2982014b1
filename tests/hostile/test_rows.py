"""Values the database would refuse: longer than their column, NUL characters, undecodable
bytes. Each mail is stored with its values bounded and cleaned, still threads, and the
ordinary mail fetched in the same batch still gets its ticket and acknowledgement."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from mailbridge.db.models import Article, AttachmentRecord, InboundMessage, Ticket
from tests.hostile.conftest import World
from tests.hostile.rawmail import (
    LONG_ID,
    ORDINARY,
    ORDINARY_SENDER,
    encoded_word,
    raw_mail,
    with_attachment,
)
from tests.hostile.triggers import allow_rows, refuse_rows
from tests.support.builders import mail

pytestmark = pytest.mark.integration


def limit(column: object) -> int:
    length = getattr(getattr(column, "type", None), "length", None)
    assert isinstance(length, int)
    return length


def assert_ordinary_served(world: World) -> None:
    """The ordinary mail of the batch: a ticket, and its acknowledgement sent."""
    assert any(t.requester_address == ORDINARY_SENDER for t in world.tickets())
    assert len(world.sent_to(ORDINARY_SENDER)) == 1


def assert_all_processed(world: World) -> None:
    assert [(m.state, m.last_error) for m in world.inbound()] == [("processed", None)] * len(
        world.inbound()
    )


def test_an_overlong_message_id_is_stored_and_replies_naming_it_still_thread(world: World) -> None:
    world.deliver(ORDINARY, raw_mail([], message_id=LONG_ID, subject="Long id"))
    world.run()

    assert_ordinary_served(world)
    assert len(world.tickets()) == 2
    first = next(t for t in world.tickets() if t.subject == "Long id")
    in_reply_to = raw_mail(
        [("In-Reply-To", LONG_ID), ("References", LONG_ID)], subject="Re: Long id (reply)"
    )
    references_only = raw_mail(
        [("References", f"<elsewhere@x.example> {LONG_ID}")], subject="Re: Long id (references)"
    )
    world.deliver(in_reply_to, references_only)
    world.run()

    assert len(world.tickets()) == 2
    assert first.number is not None
    assert [a.subject for a in world.articles(first.number)] == [
        "Long id",
        "Re: Long id (reply)",
        "Re: Long id (references)",
    ]
    assert_all_processed(world)
    with world.app.sessions() as session:
        stored = session.scalars(select(InboundMessage.message_id)).all()
    assert all(m is None or len(m) <= limit(InboundMessage.message_id) for m in stored)


@dataclass(frozen=True)
class Overlong:
    raw: bytes
    # (stored value, what the mail said) for the value that was too long
    stored: Callable[[World], tuple[str | None, int]]


def _ticket_of(world: World, sender: str) -> Ticket:
    return next(t for t in world.tickets() if t.requester_address.endswith(sender))


def _article(world: World) -> Article:
    ticket = _ticket_of(world, "customer.example")
    assert ticket.number is not None
    return world.articles(ticket.number)[0]


def _attachment(world: World) -> AttachmentRecord:
    with world.app.sessions() as session:
        return session.scalars(select(AttachmentRecord)).one()


NAME = "N" * 10_000
FILENAME = "f" * 10_000 + ".pdf"
ADDRESS = "a" * 1_990 + "@customer.example"
CONTENT_ID = "<" + "c" * 5_000 + "@customer.example>"
SUBTYPE = "x-" + "t" * 5_000

OVERLONG = {
    "display name": Overlong(
        raw_mail([], sender=f'"{NAME}" <ada@customer.example>'),
        lambda w: (_article(w).from_name, len(NAME)),
    ),
    "subject of a megabyte": Overlong(
        raw_mail([], subject="S" * 1_000_000),
        lambda w: (_ticket_of(w, "ada@customer.example").subject, 1_000_000),
    ),
    "address": Overlong(
        raw_mail([], sender=f"Ada <{ADDRESS}>"), lambda w: (_article(w).from_address, len(ADDRESS))
    ),
    "attachment filename": Overlong(
        with_attachment(filename_param=f'filename="{FILENAME}"'.encode()),
        lambda w: (_attachment(w).filename, len(FILENAME)),
    ),
    "content id": Overlong(
        with_attachment(
            filename_param=b'filename="a.pdf"', extra=[b"Content-ID: " + CONTENT_ID.encode()]
        ),
        lambda w: (_attachment(w).content_id, len(CONTENT_ID) - 2),
    ),
    "content type": Overlong(
        with_attachment(
            filename_param=b'filename="a.pdf"', content_type=f"application/{SUBTYPE}".encode()
        ),
        lambda w: (_attachment(w).content_type, len(SUBTYPE) + 12),
    ),
}


@pytest.mark.parametrize("case", OVERLONG.values(), ids=OVERLONG.keys())
def test_an_overlong_value_is_stored_bounded_and_the_batch_goes_on(
    world: World, case: Overlong
) -> None:
    world.deliver(case.raw, ORDINARY)
    world.run()

    assert_ordinary_served(world)
    assert len(world.tickets()) == 2
    assert_all_processed(world)
    value, said = case.stored(world)
    assert value is not None and 0 < len(value) < said
    assert [m.raw for m in world.inbound()][0] == case.raw  # the bytes as they came


def test_nul_characters_are_stored_as_replacement_characters(world: World) -> None:
    hostile = with_attachment(
        filename_param=b"filename*=utf-8''report%00.pdf",
        sender=encoded_word("Ada\x00 Customer") + b" <ada@customer.example>",
        subject=encoded_word("Help\x00me"),
        text=(
            b"Content-Type: text/plain; charset=utf-8",
            b"Content-Transfer-Encoding: base64",
            b"",
            base64.b64encode(b"see the\x00file"),
        ),
    )
    world.deliver(hostile, ORDINARY)
    world.run()

    assert_ordinary_served(world)
    assert_all_processed(world)
    article = _article(world)
    assert article.subject == "Help\ufffdme"
    assert article.from_name == "Ada Customer"  # a display name loses control characters
    assert "see the\ufffdfile" in article.text_body
    assert _attachment(world).filename == "report .pdf"  # a file name loses them too
    assert world.inbound()[0].raw == hostile


def test_raw_nul_bytes_in_headers_do_not_block_the_mailbox(world: World) -> None:
    first = raw_mail(
        [],
        message_id=b"<nul\x00id@customer.example>",
        subject=b"Nul\x00here",
        sender=b"Ada\x00 Customer <ada@customer.example>",
    )
    reply = raw_mail([("In-Reply-To", b"<nul\x00id@customer.example>")], subject=b"Re: Nul")
    world.deliver(first, ORDINARY)
    world.run()
    world.deliver(reply)
    world.run()

    assert_ordinary_served(world)
    assert_all_processed(world)
    assert len(world.tickets()) == 2
    ticket = _ticket_of(world, "ada@customer.example")
    assert ticket.number is not None
    assert [(a.subject, a.from_name) for a in world.articles(ticket.number)] == [
        ("Nul\ufffdhere", "Ada Customer"),
        ("Re: Nul", "Ada Customer"),
    ]
    assert world.inbound()[0].raw == first


MARK = "refuse-me-4d9b"


def test_a_message_the_database_refuses_as_fetched_is_kept_raw_and_still_served(
    world: World,
) -> None:
    refuse_rows(world.app.engine, "inbound_message", "message_id", MARK)
    hostile = raw_mail([], message_id=f"<{MARK}@customer.example>", subject="Refused id")
    world.deliver(ORDINARY, hostile)
    world.run()

    assert_ordinary_served(world)
    kept = next(m for m in world.inbound() if m.raw == hostile)
    assert (kept.message_id, kept.state) == (None, "processed")
    assert _ticket_of(world, "ada@customer.example").subject == "Refused id"
    assert len(world.sent_to("ada@customer.example")) == 1


def test_a_message_the_database_refuses_whole_stays_on_the_server_until_it_is_taken(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    refuse_rows(world.app.engine, "inbound_message", "raw", MARK, binary=True)
    hostile = raw_mail([], subject=f"Refused {MARK}")
    world.deliver(hostile, ORDINARY)
    world.run()

    assert_ordinary_served(world)
    assert world.imap.messages("INBOX") == [hostile]
    assert hostile not in [m.raw for m in world.inbound()]
    assert "cannot be stored" in caplog.text and "stays on the server" in caplog.text
    world.deliver(mail(sender="Cleo <cleo@customer.example>", subject="Later"))
    world.run()
    assert len(world.sent_to("cleo@customer.example")) == 1, "the mailbox goes on"
    assert world.imap.messages("INBOX") == [hostile]

    allow_rows(world.app.engine, "inbound_message", "raw")
    world.run()
    assert world.imap.messages("INBOX") == []
    assert _ticket_of(world, "ada@customer.example").subject == f"Refused {MARK}"
    assert len(world.sent_to("ada@customer.example")) == 1
    assert len(world.inbound()) == 3
