"""A batch runs in one savepoint (inbound/process.py, `_process_together`); a message that
raises sends the batch round again with a savepoint per message. The messages before it
are then written once, not twice, and the failing one alone is charged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.db import tally
from mailbridge.db.models import Event, InboundMessage, Outbox, Ticket
from mailbridge.inbound import process
from tests.support.builders import mail, make_config, stored
from tests.support.sla_world import NOWHERE, START

pytestmark = pytest.mark.db


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[App]:
    config = make_config(
        tmp_path,
        database_url=database_url,
        imap=NOWHERE,
        smtp=NOWHERE,
        staff={"team_address": "team@shop.example"},
    )
    built = build_app(config, clock=FrozenClock(START))
    yield built
    built.close()


def test_a_failing_message_mid_batch_leaves_its_neighbours_written_once(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = process.apply_message
    applied: list[str] = []

    def poisoned(step: Any, inbound: Any, parsed: Any, verdict: Any) -> Any:
        applied.append(parsed.subject)
        if "boom" in parsed.subject:
            raise ZeroDivisionError("integer division or modulo by zero")
        return real(step, inbound, parsed, verdict)

    monkeypatch.setattr(process, "apply_message", poisoned)
    subjects = ["Printer", "Scanner", "boom", "Invoice", "Refund"]
    with app.transaction() as session:
        session.add_all(
            stored(mail(f"C{n} <c{n}@c{n}.example>", subject), uid=n, at=START)
            for n, subject in enumerate(subjects, 1)
        )

    report = process.process_pending(app)

    assert (report.processed, report.failed, report.created) == (4, 1, 4)
    # PostgreSQL runs the batch in one savepoint, and again one by one after the failure;
    # SQLite has a savepoint per message from the start.
    rounds = 1 if app.engine.dialect.name == "sqlite" else 2
    assert applied.count("Printer") == rounds
    with app.transaction() as session:
        count = lambda *where: session.scalar(select(func.count()).where(*where))  # noqa: E731
        assert count(Ticket.id >= 0) == 4
        assert count(Event.type == "created") == 4
        assert count(Outbox.kind == "ack") == 4
        assert count(Outbox.kind == "notification") == 4
        states = dict(session.execute(select(InboundMessage.uid, InboundMessage.state)).all())
        assert states == {1: "processed", 2: "processed", 3: "new", 4: "processed", 5: "processed"}
        totals = tally.totals(session)
    created = sum(v for (name, _), v in totals.items() if name == "tickets_created")
    assert created == 4
