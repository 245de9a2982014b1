"""Full-text search on SQLite and PostgreSQL, over mail that went through the real
processing path: Italian words in attachment names and quoted text, accents folded, every
word required, the status filter, ranking, an article moved by a merge, hostile queries,
retention, and the index written in the article's own transaction."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text, update

from mailbridge.cli import merge as merge_cli
from mailbridge.core.states import AuthorKind, TicketStatus
from mailbridge.db.models import Article, Ticket
from mailbridge.tickets.retention import purge
from mailbridge.tickets.search import CANDIDATES, SearchHit, search_tickets
from tests.support.builders import mail
from tests.support.sla_world import START, World, make_world, policy
from tests.support.staff_world import ADA, BEA, STAFF, STEPS

pytestmark = pytest.mark.db

QUOTED = (
    "Buongiorno,\nvi riscrivo perché non ho avuto risposta.\n\n"
    "Il giorno lun 23 nov, Ada ha scritto:\n"
    "> La ricevuta del mese scorso riporta un importo sbagliato.\n> Grazie\n"
)


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    made = make_world(
        tmp_path,
        database_url,
        sla=[policy(levels=STEPS)],
        staff=STAFF,
        retention={"purge_after": "7d", "purge": ["text"]},
    )
    yield made
    made.app.close()


def with_attachment(sender: str, subject: str, body: str, filename: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "support@shop.example", subject
    msg["Date"] = format_datetime(START)
    msg.set_content(body)
    msg.add_attachment(b"%PDF-1.4 ...", maintype="application", subtype="pdf", filename=filename)
    return msg.as_bytes()


@pytest.fixture
def tickets(world: World) -> World:
    """#1000 with an invoice attached, #1001 quoting an earlier mail with accents, #1002
    about a broken printer, #1003 mentioning the printer in passing."""
    world.receive(
        with_attachment(f"Ada <{ADA}>", "Documenti", "In allegato.\n", "fattura_marzo.pdf")
    )
    world.receive(mail(f"Bea <{BEA}>", "Sollecito", QUOTED))
    world.receive(mail(f"Ada <{ADA}>", "Stampante rotta", "La stampante è rotta, non stampa.\n"))
    world.receive(
        mail(
            f"Bea <{BEA}>",
            "Ordine 55",
            "Vorrei sapere quando arriva l'ordine. " * 20 + "Ah, e la stampante va bene.\n",
        )
    )
    return world


def numbers(world: World, words: str, **options: object) -> list[int]:
    with world.app.sessions() as session:
        return [hit.number for hit in search_tickets(session, words, **options)]  # type: ignore[arg-type]


def hits(world: World, words: str) -> list[SearchHit]:
    with world.app.sessions() as session:
        return search_tickets(session, words)


def test_an_italian_word_is_found_in_an_attachment_name_and_in_quoted_text(
    tickets: World,
) -> None:
    assert numbers(tickets, "fattura") == [1000]
    assert numbers(tickets, "marzo") == [1000]
    (quoted,) = hits(tickets, "ricevuta")
    assert quoted.number == 1001 and quoted.status == "new" and quoted.requester == BEA
    assert quoted.subject == "Sollecito"
    assert "[ricevuta]" in quoted.snippet.casefold()
    assert len(quoted.snippet) < 200


def test_accents_fold_both_ways(tickets: World) -> None:
    assert numbers(tickets, "perche") == [1001]
    assert numbers(tickets, "PERCHÉ") == [1001]
    assert "[perché]" in hits(tickets, "perche")[0].snippet


def test_every_word_is_required(tickets: World) -> None:
    assert set(numbers(tickets, "stampante")) == {1002, 1003}
    assert numbers(tickets, "stampante rotta") == [1002]
    assert numbers(tickets, "stampante fattura") == []


def test_the_status_filter(tickets: World) -> None:
    with tickets.session() as session:
        session.execute(
            update(Ticket).where(Ticket.number == 1003).values(status=TicketStatus.CLOSED)
        )
    assert numbers(tickets, "stampante", status="closed") == [1003]
    assert numbers(tickets, "stampante", status="new") == [1002]


def test_a_match_in_the_subject_ranks_above_one_in_passing(tickets: World) -> None:
    found = hits(tickets, "stampante")
    assert [hit.number for hit in found] == [1002, 1003]
    assert found[0].rank > found[1].rank


def test_a_merged_article_is_found_under_the_ticket_it_moved_to(tickets: World) -> None:
    merge_cli.merge(tickets.app, 1001, 1000, io.StringIO())
    assert numbers(tickets, "ricevuta") == [1000]
    assert numbers(tickets, "fattura") == [1000]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('"', []),
        ("*", []),
        ("-", []),
        (":", []),
        ('"""', []),
        ("", []),
        ("NEAR", []),
        ("OR", []),
        ("fattura OR zanzibar", []),  # OR is a word, and every word is required
        ("NEAR(fattura marzo, 5)", []),  # so are NEAR and 5
        ("fattura -marzo", [1000]),  # - is no NOT
        ('"fattura" "marzo', [1000]),  # quotes are no phrase, unbalanced or not
        ("fattura*", [1000]),
        ("filenames:fattura", []),  # no column filter: "filenames" is a word too
        ("^fattura", [1000]),
        ("(fattura) AND (marzo)", []),  # AND is a word
    ],
)
def test_hostile_queries_are_words(tickets: World, query: str, expected: list[int]) -> None:
    assert numbers(tickets, query) == expected


def test_a_long_query_is_bounded(tickets: World) -> None:
    assert numbers(tickets, "fattura " + "x" * 100_000) == []
    assert numbers(tickets, "fattura " * 5_000) == [1000]


def test_purged_text_leaves_the_index(tickets: World) -> None:
    with tickets.session() as session:
        session.execute(
            update(Ticket)
            .where(Ticket.number == 1001)
            .values(status=TicketStatus.CLOSED, resolved_at=START)
        )
    tickets.at(timedelta(days=8))
    assert purge(tickets.app).text == 1
    assert numbers(tickets, "ricevuta") == []
    assert numbers(tickets, "sollecito") == [1001]  # the subject is record, and stays


def mention_printer(world: World, number: int, count: int) -> None:
    """`count` newer articles on ticket `number`, each naming the printer in passing."""
    ticket_id = world.ticket(number).id
    row = {
        "ticket_id": ticket_id,
        "direction": "in",
        "author_kind": AuthorKind.CUSTOMER,
        "subject": "Re: Ordine 55",
        "text_body": "Nessuna novità sull'ordine; la stampante intanto va.",
        "created_at": START,
    }
    with world.session() as session:
        session.execute(insert(Article), [row] * count)


def test_only_the_newest_matches_are_ranked(tickets: World) -> None:
    """The ranking contract: the newest CANDIDATES matching articles are ranked, older
    ones are not looked at. #1002 ("Stampante rotta", the best match) is the oldest of
    exactly CANDIDATES matches and still found first; one newer mention pushes it out,
    while #1003, whose mentions are the newest, is found."""
    mention_printer(tickets, 1003, CANDIDATES - 2)
    assert numbers(tickets, "stampante") == [1002, 1003]
    mention_printer(tickets, 1003, 1)
    assert numbers(tickets, "stampante") == [1003]
    assert numbers(tickets, "stampante rotta") == [1002]  # fewer matches: found again


def test_an_older_exact_match_ranks_first_among_fewer_than_the_cap(tickets: World) -> None:
    mention_printer(tickets, 1003, 50)
    found = hits(tickets, "stampante")
    assert [hit.number for hit in found] == [1002, 1003]
    assert found[0].rank > found[1].rank


def test_the_cap_counts_only_tickets_the_filter_keeps(tickets: World) -> None:
    """Matches in tickets the status filter drops do not use up the newest CANDIDATES."""
    mention_printer(tickets, 1003, CANDIDATES)
    with tickets.session() as session:
        session.execute(
            update(Ticket).where(Ticket.number == 1003).values(status=TicketStatus.CLOSED)
        )
    assert numbers(tickets, "stampante") == [1003]
    assert numbers(tickets, "stampante", status="new") == [1002]


def index_rows(world: World, article_id: int) -> int:
    key = "article_id" if world.app.engine.dialect.name == "postgresql" else "rowid"
    with world.app.sessions() as session:
        found = session.execute(
            text(f"SELECT count(*) FROM article_fts WHERE {key} = :id"), {"id": article_id}
        )
        return int(found.scalar_one())


def test_the_index_is_written_in_the_articles_transaction(tickets: World) -> None:
    ticket_id = tickets.ticket(1000).id
    with tickets.app.sessions() as session, session.begin():
        article = Article(
            ticket_id=ticket_id,
            direction="out",
            author_kind=AuthorKind.STAFF,
            subject="Re: Documenti",
            text_body="Abbiamo ricevuto la quietanza.",
            created_at=tickets.now,
        )
        session.add(article)
        session.flush()
        assert [h.number for h in search_tickets(session, "quietanza")] == [1000]
        written = article.id
        session.rollback()
    assert index_rows(tickets, written) == 0
    assert numbers(tickets, "quietanza") == []
    with tickets.app.sessions() as session:
        ids = session.scalars(select(Article.id)).all()
    assert all(index_rows(tickets, article_id) == 1 for article_id in ids)
