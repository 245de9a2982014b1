"""/metrics's time over a large database, beside a bare count of the same rows.

    python bench/metrics.py [--db sqlite|postgresql|both] [--tickets 100000] [--runs 5]
                            [--seed 1]

Builds --tickets tickets with bench/report.py's history (answered, resolved, spam and
merged ones; acknowledgements, escalations, tags, events), and for each the mail it came
from (an inbound_message with 3 KB of raw bytes, and its article); one message in ten more
that processing ignored, one in a thousand quarantined, a few mails still to send, and the
tally as the counters kept it (folded, plus 1,000 rows not yet folded).

Then measures, --runs times, a scrape of a real Metrics registry (every family, the
database read fresh: its reading cache starts empty): best and first; each statement's
time on the best run; and `SELECT COUNT(*)` over the tickets for scale.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import database, workdir
from report import CONFIG, NOW, batches
from sqlalchemy import Engine, event, func, insert, select, text

from mailbridge.app import build_app
from mailbridge.clock import FrozenClock
from mailbridge.config import load_config
from mailbridge.core import tallies
from mailbridge.core.tallies import labels, observation
from mailbridge.db import migrate, tally
from mailbridge.db.engine import make_engine
from mailbridge.db.models import (
    Article,
    Escalation,
    Event,
    InboundMessage,
    Outbox,
    Ticket,
    TicketTag,
)
from mailbridge.service.health import Health
from mailbridge.service.metrics import Metrics

RAW = b"X" * 3_000  # about what a short mail weighs, so rows are not tiny


def _mail(rows: list[dict[str, Any]], uid: int, at: Any, state: str, ticket: int | None) -> None:
    rows.append(
        {
            "id": uid,
            "mailbox": "support",
            "folder": "INBOX",
            "uidvalidity": 1,
            "uid": uid,
            "message_id": f"<m{uid}@customer.example>",
            "fingerprint": f"{uid:064x}",
            "raw": RAW,
            "size": len(RAW),
            "received_at": at,
            "arrived_at": at,
            "state": state,
            "attempts": 1,
            "processed_at": at,
            "ticket_id": ticket,
        }
    )


def _article(ticket: dict[str, Any], inbound: int) -> dict[str, Any]:
    return {
        "ticket_id": ticket["id"],
        "direction": "in",
        "author_kind": "customer",
        "kind": "customer",
        "from_address": ticket["requester_address"],
        "to": ["support@shop.example"],
        "cc": [],
        "subject": ticket["subject"],
        "text_body": "Hello, the parcel has not arrived. " * 20,
        "defects": [],
        "created_at": ticket["created_at"],
        "inbound_message_id": inbound,
    }


def _counted(ticket: dict[str, Any], counts: Counter[tuple[str, tallies.Labels]]) -> None:
    """What the daemon would have counted for this ticket (the tally, folded)."""
    key = {"mailbox": ticket["mailbox"], "queue": ticket["queue"], "policy": ticket["sla_policy"]}
    counts[tallies.TICKETS_CREATED, labels(**key)] += 1
    responded = ticket["first_responded_at"]
    if responded is not None:
        seconds = (responded - ticket["created_at"]).total_seconds()
        for name, found, value in observation(tallies.FIRST_RESPONSE, key, seconds):
            counts[name, found] += value
        met = responded <= ticket["first_response_due_at"]
        kept = tallies.SLA_MET if met else tallies.SLA_BREACHED
        counts[kept, labels(deadline="first_response", policy=key["policy"])] += 1


def build(engine: Engine, tickets: int, seed: int) -> None:
    started, uid = time.perf_counter(), 0
    rng = random.Random(seed)
    counts: Counter[tuple[str, tallies.Labels]] = Counter()
    for rows in batches(tickets, 730, seed):
        mails: list[dict[str, Any]] = []
        articles = []
        for ticket in rows.tickets:
            uid += 1
            _mail(mails, uid, ticket["created_at"], "processed", ticket["id"])
            articles.append(_article(ticket, uid))
            _counted(ticket, counts)
            if rng.random() < 0.1:
                uid += 1
                _mail(mails, uid, ticket["created_at"], "ignored", None)
            if rng.random() < 0.001:
                uid += 1
                _mail(mails, uid, ticket["created_at"], "quarantined", None)
        with engine.begin() as connection:
            connection.execute(insert(Ticket), rows.tickets)
            connection.execute(insert(InboundMessage), mails)
            for model, values in (
                (Article, articles),
                (Outbox, rows.acks),
                (Escalation, rows.escalations),
                (TicketTag, rows.tags),
                (Event, rows.events),
            ):
                if values:
                    connection.execute(insert(model), values)
        if rows.tickets[-1]["id"] % 100_000 == 0 or rows.tickets[-1]["id"] == tickets:
            print(f"  {rows.tickets[-1]['id']:>9,} tickets {time.perf_counter() - started:7.1f} s")
    _finish(engine, counts)


def _finish(engine: Engine, counts: Counter[tuple[str, tallies.Labels]]) -> None:
    """A few mails still to send, the tally with a tail not yet folded, statistics."""
    with engine.begin() as connection:
        pending = [
            {
                "kind": "ack",
                "envelope_from": "support@shop.example",
                "envelope_to": [f"late{n}@customer.example"],
                "message_id": f"<late.{n}@shop.example>",
                "raw": b"X" * 2_000,
                "state": "pending",
                "attempts": 1,
                "next_attempt_at": NOW,
                "created_at": NOW - timedelta(minutes=n),
            }
            for n in range(20)
        ]
        connection.execute(insert(Outbox), pending)
    from sqlalchemy.orm import Session

    with Session(engine) as session, session.begin():
        tally.add(session, [(name, key, value) for (name, key), value in counts.items()])
        one = next(iter(counts))
        tally.add(session, [(one[0], one[1], 1.0)] * 1_000)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(
            text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")
        )


class Statements:
    """Each statement's time, while on."""

    def __init__(self, engine: Engine) -> None:
        self.on, self.times = False, []  # type: ignore[var-annotated]
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, *_: Any) -> None:
        conn.info["started"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if self.on:
            took = time.perf_counter() - conn.info["started"]
            self.times.append((took, " ".join(statement.split())[:90]))


def measure(config: Path, runs: int) -> None:
    app = build_app(load_config(config), clock=FrozenClock(NOW), migrate_now=False)
    statements = Statements(app.engine)
    try:
        took: list[tuple[float, list[tuple[float, str]]]] = []
        for _ in range(runs):
            statements.times = []
            statements.on = True
            started = time.perf_counter()
            Metrics(app, Health(app.clock)).render()  # a new registry: nothing cached
            took.append((time.perf_counter() - started, statements.times))
            statements.on = False
        with app.engine.connect() as connection:
            started = time.perf_counter()
            counted = connection.execute(select(func.count()).select_from(Ticket)).scalar_one()
            count = time.perf_counter() - started
    finally:
        app.close()
    best, parts = min(took)
    print(f"  scrape    best {best * 1000:7.1f} ms  first {took[0][0] * 1000:7.1f} ms")
    print(f"  count     {count * 1000:7.1f} ms  (COUNT(*) = {counted:,} tickets)")
    for seconds, statement in sorted(parts, reverse=True)[:4]:
        print(f"    {seconds * 1000:6.1f} ms  {statement}")


def run(kind: str, tickets: int, runs: int, seed: int) -> None:
    print(f"{kind}: {tickets:,} tickets")
    with workdir("mb-bench-metrics-") as base, database(kind, base) as url:
        engine = make_engine(url)
        migrate.upgrade(engine)
        build(engine, tickets, seed)
        engine.dispose()
        config = base / "mailbridge.toml"
        config.write_text(CONFIG.format(url=url, data=base), encoding="utf-8")
        (base / "imap-password").write_text("unused", encoding="utf-8")
        (base / "imap-password").chmod(0o600)
        measure(config, runs)


def kinds(choice: str) -> Iterator[str]:
    yield from ("sqlite", "postgresql") if choice == "both" else (choice,)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    for kind in kinds(args.db):
        run(kind, args.tickets, args.runs, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
