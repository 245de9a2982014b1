"""Parsing in a worker process (inbound/prepare.py): the same outcomes as parsing here; a
message that kills the worker is named, retried and quarantined; one that overruns its
budget of time or memory is stopped and quarantined at once; the others are not held back."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from mailbridge.app import App, build_app
from mailbridge.core.classify import Identity
from mailbridge.core.message import ParseLimits
from mailbridge.db.models import InboundMessage, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.inbound import process
from mailbridge.inbound.prepare import Budget, OverBudget, ParserCrashed, Preparer
from mailbridge.service.daemon import Daemon
from tests.support.builders import mail, make_config
from tests.support.faulty_parser import faulty

pytestmark = pytest.mark.integration

EML = Path(__file__).resolve().parents[1] / "data" / "eml"
IDENTITY = Identity(
    own_addresses=frozenset({"support@shop.example"}),
    own_domains=frozenset({"shop.example"}),
    loop_token="mailbridge@shop.example",
)
LIMITS = ParseLimits(max_attachment_bytes=10_000)


def corpus() -> list[tuple[int, bytes]]:
    files = sorted(EML.glob("*.eml"))
    return [(number, path.read_bytes()) for number, path in enumerate(files, start=1)]


def outcomes(preparer: Preparer, messages: list[tuple[int, bytes]]) -> dict[int, Any]:
    found: dict[int, Any] = {}
    for inbound_id, raw in messages:
        try:
            found[inbound_id] = preparer.result(inbound_id, raw)
        except Exception as exc:  # noqa: BLE001 - what each message gave is the point
            found[inbound_id] = exc
    return found


def test_the_worker_gives_what_parsing_here_gives() -> None:
    messages = corpus()
    with Preparer(LIMITS, IDENTITY, isolated=False) as here:
        expected = outcomes(here, messages)
    with Preparer(LIMITS, IDENTITY) as there:
        assert there.isolated
        there.plan(messages[:5])
        there.plan(messages)  # planned again, as a batch and the message after it are
        # Asked in another order than planned, and one never planned.
        got = outcomes(there, messages[::-1] + [(99, mail(subject="Not planned"))])
    assert got.pop(99)[0].subject == "Not planned"
    assert got == expected
    assert {verdict.kind for _, verdict in got.values()} >= {"customer", "bounce"}


@pytest.mark.slow
def test_a_message_that_kills_the_worker_is_named_and_the_others_are_not() -> None:
    messages = [(i, mail(subject=f"Question {i}")) for i in range(1, 13)]
    messages[4] = (5, mail(subject="Crash", headers={"X-Test-Crash-Parser": "yes"}))
    messages[9] = (10, mail(subject="Crash again", headers={"X-Test-Crash-Parser": "yes"}))
    messages[6] = (7, mail(subject="Raises", headers={"X-Test-Raise": "yes"}))
    with Preparer(LIMITS, IDENTITY, function=faulty) as preparer:
        preparer.plan(messages)
        got = outcomes(preparer, messages)
        assert preparer.isolated, "a crash restarts the worker, it does not end isolation"
    assert isinstance(got.pop(5), ParserCrashed)
    assert isinstance(got.pop(10), ParserCrashed)
    raised = got.pop(7)
    assert isinstance(raised, RuntimeError)
    assert str(raised) == "Unpicklable: 7: cannot parse this"
    assert [parsed.subject for parsed, _ in got.values()] == [
        f"Question {i}" for i in (1, 2, 3, 4, 6, 8, 9, 11, 12)
    ]


def test_a_message_over_the_time_budget_is_stopped_and_the_next_goes_on_at_once() -> None:
    messages = [
        (1, mail(subject="Hangs", headers={"X-Test-Hang": "yes"})),
        (2, mail(subject="After it")),
    ]
    with Preparer(LIMITS, IDENTITY, Budget(seconds=1.0), function=faulty) as preparer:
        preparer.plan(messages)
        started = time.monotonic()
        with pytest.raises(OverBudget, match=r"longer than 1 s \(\[tickets\] parse_timeout\)"):
            preparer.result(*messages[0])
        stopped = time.monotonic()
        parsed, _ = preparer.result(*messages[1])
        done = time.monotonic()
    assert parsed.subject == "After it"
    assert 1.0 <= stopped - started < 3.0
    assert done - stopped < 2.0, "a fresh worker took the next message"


def test_a_message_over_the_memory_budget_is_stopped() -> None:
    messages = [
        (1, mail(subject="Hoards", headers={"X-Test-Hoard": "yes"})),
        (2, mail(subject="After it")),
    ]
    budget = Budget(seconds=20.0, memory=200_000_000)
    with Preparer(LIMITS, IDENTITY, budget, function=faulty) as preparer:
        preparer.plan(messages)
        with pytest.raises(OverBudget, match=r"more memory .* \(\[tickets\] parse_memory\)"):
            preparer.result(*messages[0])
        assert preparer.result(*messages[1])[0].subject == "After it"


def test_what_a_message_left_behind_never_counts_against_the_next_ones_budget() -> None:
    # Each leaves 100 MB of garbage in a reference cycle, as a large parsed mail does;
    # kept, the fourth would find 300 MB taken of its 350.
    messages = [
        (n, mail(subject=f"Scan {n}", headers={"X-Test-Leave": "yes"})) for n in range(1, 7)
    ]
    budget = Budget(seconds=20.0, memory=350_000_000)
    with Preparer(LIMITS, IDENTITY, budget, function=faulty) as preparer:
        preparer.plan(messages)
        subjects = [preparer.result(*message)[0].subject for message in messages]
    assert subjects == [f"Scan {n}" for n in range(1, 7)]


def test_a_worker_gives_back_what_a_large_mail_took() -> None:
    scan = mail(subject="Scan", body="x" * 1_200_000, headers={"X-Test-Scatter": "yes"})
    with Preparer(LIMITS, IDENTITY, Budget(seconds=20.0), function=faulty) as preparer:
        preparer.plan([(1, scan)])
        assert preparer.result(1, scan)[0].subject == "Scan"
        (pid,) = [s.worker.pid for s in preparer._slots if s.worker.running]
        # It gives it back once it has answered: look until it has, or for 10 s.
        until = time.monotonic() + 10.0
        while True:
            status = Path(f"/proc/{pid}/status").read_text()
            peak, now = (
                int(status.split(f"{k}:")[1].split()[0]) // 1024 for k in ("VmHWM", "VmRSS")
            )
            if peak - now > 150 or time.monotonic() > until:
                break
            time.sleep(0.05)
    assert peak - now > 150, f"the worker kept {now} MB of its {peak} MB peak"


# --- in a pass -------------------------------------------------------------------------


class FaultyPreparer(Preparer):
    """A Preparer with the faulty prepare function."""

    def __init__(
        self, limits: ParseLimits, identity: Identity, budget: Budget, **_: object
    ) -> None:
        super().__init__(limits, identity, budget, function=faulty)


@pytest.fixture
def app(
    tmp_path: Path,
    database_url: str,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[App]:
    monkeypatch.setattr(process, "Preparer", FaultyPreparer)
    app = build_app(
        make_config(
            tmp_path,
            database_url=database_url,
            imap=imap_server,
            smtp=smtp_sink,
            tickets={"max_attempts": 2, "parse_timeout": "1s"},
        )
    )
    yield app
    app.close()


def count(app: App, query: Any) -> int:
    with app.sessions() as session:
        return int(session.scalar(query) or 0)


@pytest.mark.slow
def test_a_parser_crash_in_a_pass_is_retried_then_quarantined(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    for i in range(1, 8):
        headers = {"X-Test-Crash-Parser": "yes"} if i == 3 else None
        imap_server.append(mail(f"C{i} <c{i}@customers.example>", f"Question {i}", headers=headers))

    first = asyncio.run(Daemon(app).run_once())
    assert (first.processed.created, first.processed.failed) == (6, 1)
    assert len(smtp_sink.wait_for(6)) == 6
    with app.sessions() as session:
        crashed = session.scalars(select(InboundMessage).where(InboundMessage.state == "new")).one()
        assert (crashed.attempts, crashed.last_error) == (
            1,
            "ParserCrashed: the parsing process ended unexpectedly while preparing this message",
        )

    second = asyncio.run(Daemon(app).run_once())
    assert (second.processed.failed, second.processed.quarantined) == (1, 1)
    assert count(app, select(func.count(Ticket.id))) == 6
    assert (
        count(
            app, select(func.count(InboundMessage.id)).where(InboundMessage.state == "quarantined")
        )
        == 1
    )


def test_a_message_over_its_budget_is_quarantined_in_its_first_pass(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    for i in range(1, 5):
        headers = {"X-Test-Hang": "yes"} if i == 2 else None
        imap_server.append(mail(f"C{i} <c{i}@customers.example>", f"Question {i}", headers=headers))

    report = asyncio.run(Daemon(app).run_once())

    assert (report.processed.created, report.processed.quarantined) == (3, 1)
    assert len(smtp_sink.wait_for(3)) == 3
    with app.sessions() as session:
        stopped = session.scalars(
            select(InboundMessage).where(InboundMessage.state == "quarantined")
        ).one()
        assert stopped.attempts == 1
        assert stopped.last_error == (
            "OverBudget: parsing took longer than 1 s ([tickets] "
            "parse_timeout): the parser was stopped"
        )


def test_run_once_starts_the_parse_worker_while_new_mail_is_fetched_never_for_none(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    def recording(daemon: Daemon) -> list[str]:
        """Who starts the daemon's parse worker ahead of its first message, in order."""
        starts: list[str] = []
        real = daemon.preparer.start

        def start() -> None:
            starts.append(threading.current_thread().name)
            real()

        daemon.preparer.start = start  # type: ignore[method-assign]
        return starts

    quiet = Daemon(app)
    quiet_starts = recording(quiet)
    assert asyncio.run(quiet.run_once()).fetched == {"support": 0}
    assert quiet_starts == []  # an empty pass (a cron job's usual one) starts no process

    for i in range(1, 4):
        imap_server.append(mail(f"C{i} <c{i}@customers.example>", f"Question {i}"))
    busy = Daemon(app)
    busy_starts = recording(busy)
    report = asyncio.run(busy.run_once())
    # Started once, on a thread of its own, as soon as the fetch saw the new mail.
    assert busy_starts == ["mailbridge-parse-start"]
    assert (report.fetched, report.processed.created) == ({"support": 3}, 3)
    assert not any(slot.worker.running for slot in busy.preparer._slots)  # closed after
    assert len(smtp_sink.wait_for(3)) == 3


def test_run_once_with_the_database_busy_while_fetching_leaves_the_mail_for_the_next_run(
    app: App,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    imap_server.append(mail("C1 <c1@customers.example>", "Busy database"))
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = 5  # type: ignore[attr-defined]  # SQLITE_BUSY, after its timeout

    def locked(*args: object, **kwargs: object) -> None:
        raise OperationalError("INSERT INTO inbound_message …", {}, busy)

    with monkeypatch.context() as faults:  # a fault the suite cannot wait 30 s to cause
        faults.setattr("mailbridge.inbound.fetch.store_raw", locked)
        report = asyncio.run(Daemon(app).run_once())
    assert report.failed_mailboxes["support"].startswith("SQLite: the database is locked")
    assert report.processed.created == 0
    again = asyncio.run(Daemon(app).run_once())  # the mail stayed on the server
    assert (again.fetched, again.processed.created) == ({"support": 1}, 1)
