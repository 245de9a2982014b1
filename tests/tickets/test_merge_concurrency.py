"""A merge from one instance while another instance processes customer mail for both
tickets, on SQLite and PostgreSQL: each instance has its own App (its own engine), as two
processes would. No article is lost or left on the merged ticket, and nothing raises."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailbridge.app import App, build_app
from mailbridge.cli import merge as merge_cli
from mailbridge.clock import FrozenClock
from mailbridge.core.correlate import ThreadDecision
from mailbridge.core.message import ParsedMessage
from mailbridge.db.models import Article, InboundMessage, Ticket
from mailbridge.inbound import thread
from mailbridge.inbound.process import ProcessReport, process_pending
from tests.support.builders import mail, make_config, stored
from tests.support.sla_world import NOWHERE, START

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]

ROUNDS = 4


@pytest.fixture
def apps(tmp_path: Path, database_url: str) -> Iterator[list[App]]:
    """Two instances on one database."""
    config = make_config(tmp_path, database_url=database_url, imap=NOWHERE, smtp=NOWHERE)
    made = [build_app(config, clock=FrozenClock(START)) for _ in range(2)]
    yield made
    for app in made:
        app.close()


_uids = iter(range(1, 1_000_000))


def store(app: App, raws: list[bytes]) -> None:
    """Stored as fetch stores them, unprocessed."""
    with app.transaction() as session:
        session.add_all(stored(raw, uid=next(_uids), at=START) for raw in raws)


def open_pair(app: App, n: int) -> tuple[int, int]:
    """Two tickets of one customer; their numbers (the second is merged away)."""
    store(
        app,
        [
            mail(f"C{n} <c{n}@customer.example>", f"Order {n}", message_id=f"<k{n}@c.example>"),
            mail(f"C{n} <c{n}@customer.example>", f"Again {n}", message_id=f"<m{n}@c.example>"),
        ],
    )
    assert process_pending(app).failed == 0
    with app.sessions() as session:
        numbers = session.scalars(
            select(Ticket.number).where(Ticket.subject.in_([f"Order {n}", f"Again {n}"]))
        ).all()
    first, second = sorted(n for n in numbers if n is not None)
    return first, second


def followups(n: int, merged: int) -> list[bytes]:
    """Customer mail for each ticket: by reference to each, and by the merged one's tag."""
    sender = f"C{n} <c{n}@customer.example>"
    return [
        mail(sender, f"Re: Order {n}", "kept, by reference", in_reply_to=f"<k{n}@c.example>"),
        mail(sender, f"Re: Again {n}", "merged, by reference", in_reply_to=f"<m{n}@c.example>"),
        mail(sender, f"Re: [#{merged}] Again {n}", "merged, by tag"),
    ]


def articles_on(app: App, number: int) -> int:
    with app.sessions() as session:
        query = (
            select(func.count(Article.id))
            .join(Ticket, Ticket.id == Article.ticket_id)
            .where(Ticket.number == number)
        )
        return session.scalar(query) or 0


def run_together(*jobs: Callable[[], object]) -> list[BaseException]:
    """Run the jobs in threads started together; the exceptions they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def run(job: Callable[[], object]) -> None:
        start.wait()
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads), "a job hung"
    return errors


def test_merging_while_another_instance_processes_mail_for_both_tickets(
    apps: list[App],
) -> None:
    processor, merger = apps
    for n in range(ROUNDS):
        kept, merged = open_pair(processor, n)
        store(processor, followups(n, merged))
        reports: list[ProcessReport] = []
        errors = run_together(
            lambda r=reports: r.append(process_pending(processor)),
            lambda k=kept, m=merged: merge_cli.merge(merger, m, k, io.StringIO()),
        )

        assert errors == []
        assert sum(r.failed for r in reports) == 0
        process_pending(processor)  # anything the first pass left for later
        assert articles_on(processor, merged) == 0, "nothing left on the merged ticket"
        assert articles_on(processor, kept) == 2 + 3, "every mail on the kept ticket"
    with processor.sessions() as session:
        states = set(session.scalars(select(InboundMessage.state)))
        tickets = session.scalar(select(func.count(Ticket.id)))
    assert states == {"processed"} and tickets == 2 * ROUNDS


def test_a_merge_waits_for_a_batch_that_already_chose_the_merged_ticket(
    apps: list[App], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worst moment: processing has decided the mail goes to the ticket about to be
    merged away, and the merge starts then. It waits for the batch, then moves its
    article too."""
    processor, merger = apps
    kept, merged = open_pair(processor, 0)
    store(processor, [followups(0, merged)[1]])
    decided, merge_done = threading.Event(), threading.Event()
    chosen = thread.which_ticket

    def which_ticket(step: object, parsed: ParsedMessage) -> ThreadDecision:
        decision = chosen(step, parsed)  # type: ignore[arg-type]
        decided.set()
        # A merge that did not wait for this batch would finish now, and the article
        # written below would stay on the merged ticket.
        merge_done.wait(2)
        return decision

    monkeypatch.setattr(thread, "which_ticket", which_ticket)
    reports: list[ProcessReport] = []

    def merge_then() -> None:
        decided.wait(30)
        merge_cli.merge(merger, merged, kept, io.StringIO())
        merge_done.set()

    errors = run_together(lambda: reports.append(process_pending(processor)), merge_then)

    assert errors == [] and [r.failed for r in reports] == [0]
    assert articles_on(processor, merged) == 0
    assert articles_on(processor, kept) == 3
