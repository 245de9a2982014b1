"""Several parse workers for a backlog (inbound/prepare.py): results in the order asked, a
message over its budget or one that kills its worker costs only itself while the other
workers go on, a small backlog stays with one worker, and the extra workers end when idle."""

from __future__ import annotations

import asyncio
import os
import select as selectors
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailbridge.app import App, build_app
from mailbridge.core.classify import Identity
from mailbridge.core.message import ParseLimits
from mailbridge.db.models import Article, InboundMessage, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.inbound import process
from mailbridge.inbound.prepare import Budget, OverBudget, ParserCrashed, Preparer, worker_count
from mailbridge.service.daemon import Daemon
from tests.support.builders import mail, make_config
from tests.support.faulty_parser import faulty, signed

pytestmark = pytest.mark.integration

IDENTITY = Identity(
    own_addresses=frozenset({"support@shop.example"}),
    own_domains=frozenset({"shop.example"}),
    loop_token="mailbridge@shop.example",
)
LIMITS = ParseLimits(max_attachment_bytes=10_000)
TWO = Budget(seconds=5.0, workers=2)


def questions(count: int, **odd: dict[str, str]) -> list[tuple[int, bytes]]:
    """Messages 1..count; odd["m3"] gives message 3 those headers."""
    return [
        (i, mail(subject=f"Question {i}", headers=odd.get(f"m{i}"))) for i in range(1, count + 1)
    ]


def in_order(preparer: Preparer, messages: list[tuple[int, bytes]]) -> list[Any]:
    """Each message's subject and the process that prepared it, or what it raised, asked
    for one after the other as processing does."""
    found: list[Any] = []
    for inbound_id, raw in messages:
        try:
            subject = preparer.result(inbound_id, raw)[0].subject
        except Exception as exc:  # noqa: BLE001 - what each message gave is the point
            found.append(exc)
        else:
            text, pid = subject.rsplit(" @", 1)
            found.append((text, int(pid)))
    return found


def pids(found: list[Any]) -> set[int]:
    return {item[1] for item in found if isinstance(item, tuple)}


def test_a_backlog_is_prepared_by_several_workers_and_given_back_in_order() -> None:
    messages = questions(8)
    with Preparer(LIMITS, IDENTITY, TWO, function=signed, widen_at=4) as preparer:
        preparer.plan(messages)
        found = in_order(preparer, messages)
    assert [subject for subject, _ in found] == [f"Question {i}" for i in range(1, 9)]
    assert len(pids(found)) == 2
    assert os.getpid() not in pids(found)


def test_a_small_backlog_stays_with_one_worker() -> None:
    seen: set[int] = set()
    with Preparer(LIMITS, IDENTITY, TWO, function=signed, widen_at=4) as preparer:
        for first in (1, 5, 9):  # passes of a few messages each, as IDLE brings them
            messages = [(i, mail(subject=f"Question {i}")) for i in range(first, first + 4)]
            preparer.plan(messages)
            found = in_order(preparer, messages)
            assert [text for text, _ in found] == [f"Question {i}" for i in range(first, first + 4)]
            seen |= pids(found)
    assert len(seen) == 1, "one process, started once, prepared every message"


def test_a_message_over_budget_is_stopped_while_the_other_workers_go_on() -> None:
    messages = questions(6, m2={"X-Test-Hang": "yes"})
    budget = Budget(seconds=1.0, workers=2)
    with Preparer(LIMITS, IDENTITY, budget, function=signed, widen_at=2) as preparer:
        preparer.plan(messages)
        found = in_order(preparer, messages)  # the stopped message never returns by itself
    assert isinstance(found[1], OverBudget)
    assert [item[0] for item in found if isinstance(item, tuple)] == [
        f"Question {i}" for i in (1, 3, 4, 5, 6)
    ]
    # Message 2 hung in a second worker; the first went on with message 3 meanwhile.
    assert found[0][1] == found[2][1], "the other worker went on during the stopped one"


def test_a_worker_killed_mid_batch_is_replaced_and_the_batch_finishes() -> None:
    messages = questions(8, m3={"X-Test-Crash-Parser": "yes"})
    with Preparer(LIMITS, IDENTITY, TWO, function=signed, widen_at=2) as preparer:
        preparer.plan(messages)
        found = in_order(preparer, messages)
        assert preparer.isolated
    assert isinstance(found[2], ParserCrashed)
    assert [item[0] for item in found if isinstance(item, tuple)] == [
        f"Question {i}" for i in (1, 2, 4, 5, 6, 7, 8)
    ]
    before, after = pids(found[:2]), pids(found[3:])
    assert len(before) == 2 and after - before, "a fresh worker took the dead one's place"


def test_the_extra_workers_end_by_themselves_when_the_backlog_is_done() -> None:
    messages = questions(4)
    with Preparer(LIMITS, IDENTITY, TWO, function=signed, widen_at=2, linger=0.3) as preparer:
        preparer.plan(messages)
        found = in_order(preparer, messages)
        first = found[0][1]  # the first message goes to the first worker, which stays
        extras = pids(found) - {first}
        assert extras
        assert all(ended_within(extra, 5.0) for extra in extras)
        assert not ended_within(first, 0.0)
        preparer.plan(questions(1))  # a lone message later: the first worker, as before
        assert pids(in_order(preparer, questions(1))) == {first}


def ended_within(pid: int, seconds: float) -> bool:
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = selectors.select([handle], [], [], seconds)
        return bool(readable)
    finally:
        os.close(handle)


def test_auto_is_the_processors_this_process_may_use_capped() -> None:
    assert worker_count(3) == 3
    assert worker_count("auto") == min(len(os.sched_getaffinity(0)), 8)


# --- in a pass -------------------------------------------------------------------------


class WidePreparer(Preparer):
    """The faulty prepare function, and a backlog from three messages on."""

    def __init__(
        self, limits: ParseLimits, identity: Identity, budget: Budget, **_: object
    ) -> None:
        super().__init__(limits, identity, budget, function=faulty, widen_at=2)


@pytest.fixture
def app(
    tmp_path: Path,
    database_url: str,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[App]:
    monkeypatch.setattr(process, "Preparer", WidePreparer)
    app = build_app(
        make_config(
            tmp_path,
            database_url=database_url,
            imap=imap_server,
            smtp=smtp_sink,
            tickets={"parse_timeout": "1s", "parse_workers": 2},
        )
    )
    yield app
    app.close()


def test_a_backlog_in_two_workers_is_applied_in_arrival_order(
    app: App, imap_server: EmbeddedImapServer
) -> None:
    imap_server.append(mail("C1 <c1@customers.example>", "Question 1", message_id="<q1@c.example>"))
    imap_server.append(mail("C2 <c2@customers.example>", "Hangs", headers={"X-Test-Hang": "yes"}))
    imap_server.append(mail("C3 <c3@customers.example>", "Question 3"))
    imap_server.append(
        mail("C1 <c1@customers.example>", "Re: Question 1", in_reply_to="<q1@c.example>")
    )
    imap_server.append(mail("C5 <c5@customers.example>", "Question 5"))

    report = asyncio.run(Daemon(app).run_once())

    assert (report.processed.created, report.processed.quarantined) == (3, 1)
    with app.sessions() as session:
        tickets = session.execute(select(Ticket.subject).order_by(Ticket.number)).scalars()
        assert list(tickets) == ["Question 1", "Question 3", "Question 5"]
        reply = session.scalars(select(Article).where(Article.subject == "Re: Question 1")).one()
        first = session.scalars(select(Ticket).where(Ticket.subject == "Question 1")).one()
        assert reply.ticket_id == first.id, "the reply came after its question"
        states = session.scalars(select(InboundMessage.state).order_by(InboundMessage.id))
        assert list(states) == ["processed", "quarantined", "processed", "processed", "processed"]
