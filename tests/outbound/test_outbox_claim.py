"""Outbox claims with more than one sender, against a real SMTP sink that takes its time.

On PostgreSQL the sender handing a row over holds it: two instances never send one row at
once, and a sender that dies lets go of its row at once, so another sends the same bytes
with the same Message-ID. On SQLite (one sender) no write is held while the server answers.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from mailbridge.app import App
from mailbridge.clock import FrozenClock
from mailbridge.db.models import Outbox
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.outbound.send import SendReport, send_pending
from tests.support.outbox import START, make_app, queue, row

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]

# A sender in a process of its own, with the system clock (past START), that the test kills.
SENDER = """
import asyncio, sys
from pathlib import Path
from types import SimpleNamespace
from mailbridge.app import build_app
from mailbridge.outbound.send import send_pending
from tests.support.builders import make_config
from tests.support.outbox import NO_IMAP
url, port, data = sys.argv[1:]
smtp = SimpleNamespace(host="127.0.0.1", port=int(port))
app = build_app(make_config(Path(data), database_url=url, imap=NO_IMAP, smtp=smtp))
asyncio.run(send_pending(app))
"""


class SlowSink(SmtpSink):
    """Answers DATA after `delay` seconds, and can hold the next message until released."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.holding = threading.Event()  # the held message's DATA has arrived
        self._hold = False
        self._released = threading.Event()

    def hold_next(self) -> None:
        self._hold = True

    def release(self) -> None:
        self._released.set()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self._hold:
            self._hold = False
            self.holding.set()
            while not self._released.is_set():
                await asyncio.sleep(0.01)
        elif self.delay:
            await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_sink() -> Iterator[SlowSink]:
    with SlowSink(delay=0.02) as sink:
        yield sink


def send(app: App) -> SendReport:
    return asyncio.run(send_pending(app, draw=lambda: 0.0))


def rows(app: App) -> list[Outbox]:
    with app.sessions() as session:
        return list(session.scalars(select(Outbox).order_by(Outbox.id)))


@pytest.mark.postgres
def test_two_senders_deliver_every_row_exactly_once(
    tmp_path: Path, postgres_url: str, slow_sink: SlowSink
) -> None:
    count = 40
    apps = [make_app(tmp_path, postgres_url, slow_sink, FrozenClock(START)) for _ in range(2)]
    try:
        for n in range(count):
            queue(apps[0], f"c{n}@corp.example", n=n)
        reports: list[SendReport] = []
        barrier = threading.Barrier(2)

        def sender(app: App) -> None:
            barrier.wait()
            reports.append(send(app))

        threads = [threading.Thread(target=sender, args=(app,)) for app in apps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        sent = rows(apps[0])
    finally:
        for app in apps:
            app.close()

    assert len(reports) == 2 and all(report.sent > 0 for report in reports), "both took part"
    assert sum(report.sent for report in reports) == count
    assert [report.deferred + report.failed for report in reports] == [0, 0]
    ids = Counter(mail.message["Message-ID"] for mail in slow_sink.received)
    assert len(slow_sink.received) == count and set(ids.values()) == {1}, "none sent twice"
    assert {f"<{r.message_id}>" for r in sent} == set(ids)
    assert {(r.state, r.attempts) for r in sent} == {("sent", 1)}


def test_a_sender_killed_mid_send_leaves_its_row_to_another_at_once(
    tmp_path: Path, database_url: str, slow_sink: SlowSink
) -> None:
    app = make_app(tmp_path, database_url, slow_sink, FrozenClock(START))
    try:
        first = queue(app, "a@corp.example", n=1)
        second = queue(app, "b@corp.example", n=2)
        slow_sink.hold_next()
        log = tmp_path / "child.log"
        with log.open("wb") as output:
            child = subprocess.Popen(
                [sys.executable, "-c", SENDER, database_url, str(slow_sink.port), str(tmp_path)],
                cwd=REPO,
                env=dict(os.environ),
                stdout=output,
                stderr=output,
            )
        try:
            assert slow_sink.holding.wait(30), log.read_text()
            if database_url.startswith("postgresql"):
                # The child holds the first row: this sender passes over it to the next.
                assert send(app) == SendReport(sent=1)
                assert (row(app, first).state, row(app, second).state) == ("pending", "sent")
        finally:
            child.kill()
            child.wait(10)
        slow_sink.release()
        assert row(app, first).attempts == 0, "the killed sender recorded nothing"

        killed_at = time.monotonic()
        while row(app, first).state == "pending" and time.monotonic() - killed_at < 10:
            send(app)
            time.sleep(0.05)
        taken_over_in = time.monotonic() - killed_at
        done = row(app, first)
        assert row(app, second).state == "sent"
    finally:
        app.close()

    assert (done.state, done.attempts) == ("sent", 1)
    assert taken_over_in < 2, "the dead sender's row was free at once"
    copies = [m for m in slow_sink.received if m.message["Message-ID"] == f"<{done.message_id}>"]
    assert 1 <= len(copies) <= 2, "at most the one the server took from the dead sender, again"
    assert {m.raw for m in copies} == {done.raw}


def test_no_write_waits_while_the_server_answers(
    tmp_path: Path, database_url: str, slow_sink: SlowSink
) -> None:
    app = make_app(tmp_path, database_url, slow_sink, FrozenClock(START))
    try:
        queue(app, "a@corp.example", n=1)
        slow_sink.hold_next()
        sender = threading.Thread(target=send, args=(app,))
        sender.start()
        try:
            assert slow_sink.holding.wait(10), "the sender never reached DATA"
            writer = threading.Thread(target=queue, args=(app, "b@corp.example"), kwargs={"n": 2})
            writer.start()
            writer.join(5)
            assert not writer.is_alive(), "a write waited for the SMTP conversation"
        finally:
            slow_sink.release()
            sender.join(30)
        assert [r.state for r in rows(app)] == ["sent", "sent"]
    finally:
        app.close()
